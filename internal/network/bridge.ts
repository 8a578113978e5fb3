// The node's pod bridge, made before any pod needs it: node-local services (the cluster DNS)
// listen on the bridge's gateway address, which otherwise appears only with the first pod.
// The CNI bridge plugin accepts a bridge that already exists and already holds exactly its
// gateway address (it adds nothing then), so the two never disagree.
import { runChecked } from "./exec.ts";

interface IpAddr {
  ifname: string;
  address?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** Makes sure bridge `name` exists, is up, holds `address`/`prefix` and keeps its MAC address. Idempotent. */
export async function ensureBridge(name: string, address: string, prefix: number): Promise<void> {
  const show = async () => {
    const r = await runChecked("ip", ["-j", "addr", "show"]);
    return (JSON.parse(r.stdout || "[]") as IpAddr[]).find((l) => l.ifname === name);
  };
  let link = await show();
  if (!link) {
    try {
      await runChecked("ip", ["link", "add", name, "type", "bridge"]);
    } catch (err) {
      // Someone (the CNI plugin for a first pod) made it meanwhile.
      if (!(await show())) throw err;
    }
    link = await show();
  }
  const has = link?.addr_info?.some((a) => a.family === "inet" && a.local === address && a.prefixlen === prefix);
  if (!has) {
    try {
      await runChecked("ip", ["addr", "add", `${address}/${prefix}`, "dev", name]);
    } catch (err) {
      if (!(await show())?.addr_info?.some((a) => a.family === "inet" && a.local === address)) throw err;
    }
  }
  // A bridge whose address was never set takes the lowest address of its ports, so it changes
  // as pods come and go; the CNI plugin's CHECK then fails for the pods attached before (their
  // ADD result recorded the old one) and an agent restart would re-attach them with new pod IPs.
  // Setting the address it has now (once, idempotent) keeps it for good.
  const mac = (await show())?.address;
  if (mac) await runChecked("ip", ["link", "set", "dev", name, "address", mac]);
  await runChecked("ip", ["link", "set", name, "up"]);
}
