// The backend of `npm run bench -- proxy`: a plain Node HTTP server (keep-alive on), run inside a
// pod's network namespace with `ip netns exec`. Prints "ready" once listening.
import http from "node:http";

const port = Number(process.argv[2] ?? 8080);
const body = Buffer.from("ok\n");
const server = http.createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(port, "0.0.0.0", () => console.log("ready"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
