# One gRPC call from Python's grpcio (Debian's python3-grpcio): a stack in another language that
# shares no code with Skiff. Reads a JSON job on stdin, prints a JSON answer on stdout. Messages
# go as raw protobuf bytes (hex) so the test encodes and decodes them; grpcio only carries them.
import json
import sys

import grpc

job = json.load(sys.stdin)
creds = grpc.ssl_channel_credentials(
    root_certificates=job["ca"].encode(),
    private_key=job["key"].encode() if job.get("key") else None,
    certificate_chain=job["cert"].encode() if job.get("cert") else None,
)
metadata = [("authorization", "Bearer " + job["token"])] if job.get("token") else None
with grpc.secure_channel(job["target"], creds) as channel:
    call = channel.unary_unary(job["path"])  # no serializers: bytes in, bytes out
    try:
        response = call(bytes.fromhex(job["request"]), metadata=metadata, timeout=20)
        print(json.dumps({"code": "OK", "response": response.hex()}))
    except grpc.RpcError as err:
        print(json.dumps({"code": err.code().name, "details": err.details()}))
