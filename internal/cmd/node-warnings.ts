// Node warnings an operator can do nothing about. grpc-js (under etcd3) passes an etcd member's
// IP address as the TLS server name, and Node warns once per process (DEP0123: SNI must be a host
// name). The member's certificate is still checked against that IP, so the warning is noise in
// `skiff up` / `skiff etcd-snapshot` output. Every other warning is still printed.
const QUIET_CODES = new Set(["DEP0123"]);

export function quietKnownWarnings(): void {
  const emit = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const [first, second] = rest;
    const code =
      typeof first === "object" && first !== null ? (first as { code?: string }).code : typeof second === "string" ? second : (warning as { code?: string }).code;
    if (code && QUIET_CODES.has(code)) return;
    (emit as (...a: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
}
