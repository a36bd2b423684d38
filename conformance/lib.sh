# Shared by the conformance runners (sourced, not run).

# Runs `npm ci` in directory $1 when the packages installed there differ from its lock file; $2 names the suite in
# messages. Exits 2 when npm fails.
npm_ready() {
  local dir=$1 name=$2
  if node -e '
    const fs = require("fs");
    const dir = process.argv[1];
    const lock = JSON.parse(fs.readFileSync(dir + "/package-lock.json", "utf8"));
    for (const [p, meta] of Object.entries(lock.packages)) {
      if (!p) continue;
      const installed = JSON.parse(fs.readFileSync(dir + "/" + p + "/package.json", "utf8"));
      if (installed.version !== meta.version) process.exit(1);
    }' "$dir" 2>/dev/null; then
    return 0
  fi
  echo "== npm ci --prefix $dir"
  npm ci --prefix "$dir" --no-audit --no-fund || { echo "$name: npm ci failed" >&2; exit 2; }
}
