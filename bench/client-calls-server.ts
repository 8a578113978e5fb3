// The peer of `bench client-calls`: a gRPC server over HTTP/2 + TLS that answers every call with
// fixed bytes, so that the benchmark's process measures only the client's CPU. Unary calls get one
// message; a call whose path ends in "/Watch" gets --events messages (each written as it would be
// sent for one event, back-pressure honoured), then OK. Given its TLS files and the two framed
// answers on argv/stdin; prints "listening <port>".
import { readFileSync } from "node:fs";
import http2 from "node:http2";

const [certFile, keyFile, caFile, answersFile, eventsArg] = process.argv.slice(2);
const { unary, event } = JSON.parse(readFileSync(answersFile, "utf8")) as { unary: string; event: string };
const unaryFrame = Buffer.from(unary, "base64");
const eventFrame = Buffer.from(event, "base64");
const events = Number(eventsArg);

const server = http2.createSecureServer({
  cert: readFileSync(certFile),
  key: readFileSync(keyFile),
  ca: readFileSync(caFile),
  requestCert: true,
  rejectUnauthorized: true,
  ALPNProtocols: ["h2"],
});
server.on("stream", (stream, headers) => {
  stream.on("error", () => {});
  stream.resume(); // the request body: not looked at
  const path = String(headers[":path"]);
  stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  if (!path.endsWith("/Watch")) {
    stream.end(unaryFrame);
    return;
  }
  let sent = 0;
  const more = () => {
    while (sent < events) {
      sent++;
      if (!stream.write(eventFrame)) return void stream.once("drain", more);
    }
    stream.end();
  };
  more();
});
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  console.log(`listening ${typeof addr === "object" && addr ? addr.port : 0}`);
});
