# Sourced by the bench/diag scripts, with top (the output folder) and name set: results go to
# $top/$name and leave as $top/$name.tar.gz (the device tool returns few files); the working directory
# becomes the repository root; bin is the installed powerret-bench; wheels from .whl/ are on PYTHONPATH.
out="$top/$name"
mkdir -p "$out"
trap 'tar -C "$top" -czf "$top/$name.tar.gz" "$name" && rm -rf "$out"' EXIT
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site
bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/powerret-bench"
