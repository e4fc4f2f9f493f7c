// The actions/cache stand-in (see action.yml). One script: restores as `main`, saves as `post`; the
// sub-actions actions/cache/restore and actions/cache/save (restore/, save/) run one half each, at once.
// Like the real action, the primary key is computed once, in main, and handed to post as state.
// Like GitHub, entries are scoped to the ref that saved them (a PR run saves under refs/pull/N/merge),
// and a run restores from its own ref, then its PR's base branch, then the default branch: a cache
// saved by one PR is invisible to every other PR.
const fs = require("fs");
const path = require("path");
const os = require("os");

const input = (name) => (process.env[`INPUT_${name.toUpperCase()}`] || "").trim();
const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
const expand = (p) => path.resolve(p.replace(/^~(?=$|\/)/, os.homedir()));
const root = process.env.STANDIN_CACHE_DIR;
const event = process.env.GITHUB_EVENT_PATH ? JSON.parse(fs.readFileSync(process.env.GITHUB_EVENT_PATH)) : {};
const defaultBranch = (event.repository && event.repository.default_branch) || "main";
const ref = process.env.GITHUB_REF || `refs/heads/${defaultBranch}`;
const scopes = [ref];
if (process.env.GITHUB_BASE_REF) scopes.push(`refs/heads/${process.env.GITHUB_BASE_REF}`);
scopes.push(`refs/heads/${defaultBranch}`);
const entry = (scope, k) => path.join(root, encodeURIComponent(scope), encodeURIComponent(k));
const keysIn = (scope) => {
  const dir = path.join(root, encodeURIComponent(scope));
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).map(decodeURIComponent)
    .sort((a, b) => fs.statSync(entry(scope, b)).mtimeMs - fs.statSync(entry(scope, a)).mtimeMs);
};
const paths = lines(input("path"));
// actions/cache/restore and actions/cache/save (the sub-actions) set STANDIN_CACHE_MODE in their wrapper
const mode = process.env.STANDIN_CACHE_MODE || "";
const savedKey = mode === "save" ? input("key") : mode === "restore" ? undefined : process.env.STATE_CACHE_KEY;

if (savedKey === undefined) {
  const key = input("key");
  let hit = null;
  for (const scope of [...new Set(scopes)]) {
    if (fs.existsSync(entry(scope, key))) { hit = [scope, key]; break; }
  }
  for (const prefix of lines(input("restore-keys"))) {
    if (hit) break;
    for (const scope of [...new Set(scopes)]) {
      const found = keysIn(scope).find((k) => k.startsWith(prefix));
      if (found) { hit = [scope, found]; break; }
    }
  }
  if (hit) {
    paths.forEach((p, i) => {
      const saved = path.join(entry(...hit), String(i));
      if (fs.existsSync(saved)) fs.cpSync(saved, expand(p), { recursive: true });
    });
    console.log(`Cache restored from key: ${hit[1]} (scope ${hit[0]})`);
  } else {
    console.log(`Cache not found for input keys: ${key}`);
  }
  if (!mode) fs.appendFileSync(process.env.GITHUB_STATE, `CACHE_KEY=${key}\nCACHE_MATCHED=${hit ? hit[1] : ""}\n`);
  fs.appendFileSync(process.env.GITHUB_OUTPUT, `cache-hit=${Boolean(hit && hit[1] === key)}\n`);
  if (mode) fs.appendFileSync(process.env.GITHUB_OUTPUT, `cache-matched-key=${hit ? hit[1] : ""}\n`);
} else if (mode === "save" && fs.existsSync(entry(ref, savedKey))) {
  console.log(`Failed to save: Unable to reserve cache with key ${savedKey}, another job may be creating this cache.`);
} else if (!mode && (process.env.STATE_CACHE_MATCHED === savedKey || fs.existsSync(entry(ref, savedKey)))) {
  console.log(`Cache hit occurred on the primary key ${savedKey}, not saving cache.`);
} else {
  fs.mkdirSync(entry(ref, savedKey), { recursive: true });
  paths.forEach((p, i) => {
    if (fs.existsSync(expand(p))) fs.cpSync(expand(p), path.join(entry(ref, savedKey), String(i)), { recursive: true });
  });
  console.log(`Cache saved with key: ${savedKey} (scope ${ref})`);
}
