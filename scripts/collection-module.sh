#!/bin/sh
# xen.pci.@MODULE@ @VERSION@: runs the module in the xenpci binary on this host.
#
# Made by scripts/build-collection from scripts/collection-module.sh. The
# binary is not sent with each task: the collection's action plugin installs
# it once per host and version, as DIR/xenpci-SHA256 (content-addressed), in
# a folder only its owner can write (root's: /var/cache/xenpci; another
# user's: ~/.cache/xenpci; or $XENPCI_CACHE_DIR). This script checks the
# copy's sha256 before every run and runs nothing else: a missing, altered
# or unsafe copy is reported to the action plugin, which installs a verified
# one and runs the task again. Being a text module holding Ansible's JSON
# arguments marker, it is pipelined by ansible-core: one SSH session a task.
sha=@SHA256@
uid=$(id -u)
if [ -n "${XENPCI_CACHE_DIR:-}" ]; then
    dir=$XENPCI_CACHE_DIR
elif [ "$uid" = 0 ]; then
    dir=/var/cache/xenpci
else
    dir=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/xenpci
fi
bin=$dir/xenpci-$sha

# need REASON WHAT: the result that asks the action plugin to install.
need() {
    esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
    printf '{"failed": true, "changed": false, "msg": "%s", "xenpci_install": {"dir": "%s", "sha256": "%s", "reason": "%s"}}\n' \
        "$(esc "$2 (the xen.pci action plugin installs it; was the module run without it?)")" \
        "$(esc "$dir")" "$sha" "$1"
    exit 0
}

# The folder and the copy: ours, and writable by nobody else.
set -- $(stat -L -c '%u %a' "$dir" "$bin" 2>/dev/null)
[ $# = 4 ] || need missing "the xenpci binary $bin is not installed"
[ "$1" = "$uid" ] && [ "$3" = "$uid" ] || need unsafe "$dir or $bin is not owned by user $uid"
[ $((0$2 & 022)) = 0 ] && [ $((0$4 & 022)) = 0 ] || need unsafe "$dir or $bin is writable by others"
printf '%s  %s\n' "$sha" "$bin" | sha256sum -c --status 2>/dev/null ||
    need mismatch "$bin does not have the sha256 of this collection's binary"
[ -z "${XENPCI_PROBE:-}" ] || { echo '{"changed": false, "xenpci_ready": true}'; exit 0; }

exec "$bin" @MODULE@ <<'XENPCI_ANSIBLE_ARGS'
<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>
XENPCI_ANSIBLE_ARGS
