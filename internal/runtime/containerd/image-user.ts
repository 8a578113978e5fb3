// The image's USER as numbers, read from the image's own /etc/passwd and /etc/group, as
// containerd's CRI plugin does: "app" → its uid and primary gid, "app:staff" → uid and the
// group's gid, "1000" → 1000 and the primary gid /etc/passwd gives uid 1000 (else 0). The files
// are read from the container's rootfs layers on the node (the overlay mount's lower
// directories, topmost first), before the container exists.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";

interface SnapshotMount {
  type: string;
  source: string;
  options: string[];
}

/** The directories that make up a rootfs, topmost first (overlay upper and lower dirs, or a bind source). */
export function layerDirs(mounts: SnapshotMount[]): string[] {
  const dirs: string[] = [];
  for (const m of mounts) {
    if (m.type === "bind") dirs.push(m.source);
    if (m.type !== "overlay") continue;
    const opt = (k: string) => m.options.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
    const upper = opt("upperdir");
    if (upper) dirs.push(upper);
    dirs.push(...(opt("lowerdir")?.split(":") ?? []));
  }
  return dirs;
}

/** A file of the rootfs: the topmost layer's copy; undefined when absent or whited out. */
function readLayered(dirs: string[], path: string): string | undefined {
  for (const dir of dirs) {
    const full = join(dir, path);
    try {
      const st = statSync(full);
      if (st.isCharacterDevice()) return undefined; // an overlay whiteout: deleted above
      return readFileSync(full, "utf8");
    } catch {
      // not in this layer
    }
  }
  return undefined;
}

/** name → [id, primary gid] from a passwd or group file (`name:x:id:gid:…`). */
function entries(text: string | undefined): Map<string, { id: number; gid: number }> {
  const out = new Map<string, { id: number; gid: number }>();
  for (const line of (text ?? "").split("\n")) {
    const [name, , id, gid] = line.split(":");
    if (!name || !/^\d+$/.test(id ?? "")) continue;
    out.set(name, { id: Number(id), gid: /^\d+$/.test(gid ?? "") ? Number(gid) : Number(id) });
  }
  return out;
}

const NUMERIC = /^\d+$/;

/**
 * "uid:gid" for an image USER; throws when a name is not in the image's files. A pod's
 * runAsUser replaces the image's USER (group included), its primary gid looked up the same way.
 */
export function resolveImageUser(user: string, dirs: string[], runAsUser?: number): string {
  const [u = "", g = ""] = runAsUser !== undefined ? [String(runAsUser)] : (user ?? "").split(":", 2);
  if (NUMERIC.test(u) && NUMERIC.test(g)) return `${u}:${g}`;
  const passwd = entries(readLayered(dirs, "etc/passwd"));
  let uid: number;
  let gid: number;
  if (u === "" || NUMERIC.test(u)) {
    uid = u === "" ? 0 : Number(u);
    gid = [...passwd.values()].find((e) => e.id === uid)?.gid ?? 0;
  } else {
    const entry = passwd.get(u);
    if (!entry) throw new Error(`unable to find user ${u}: no matching entries in the image's /etc/passwd`);
    uid = entry.id;
    gid = entry.gid;
  }
  if (NUMERIC.test(g)) gid = Number(g);
  else if (g !== "") {
    const group = entries(readLayered(dirs, "etc/group")).get(g);
    if (!group) throw new Error(`unable to find group ${g}: no matching entries in the image's /etc/group`);
    gid = group.id;
  }
  return `${uid}:${gid}`;
}
