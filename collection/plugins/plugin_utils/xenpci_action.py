# Copyright: xenpci developers
# MIT License (see the collection's galaxy.yml)
"""The action of every xen.pci module (plugins/action/NAME.py, made by
scripts/build-collection, is this class under the module's name).

A module of this collection is a small text module (plugins/modules/NAME)
that runs the module in the xenpci binary already on the host, after
checking the binary's sha256. ansible-core pipelines such a module: a task
costs one SSH session and sends only the script and its arguments.

This action runs the module as the normal action does. When the module
answers that the binary is missing from the host, altered, or in a folder
others can write (its result carries ``xenpci_install``), the action installs
the collection's binary (files/xenpci) where the module looks for it, with
the task's become, and runs the task again: once per host and version.

The install writes a temporary file beside the final name, checks its
sha256 and that it runs (a noexec mount fails here, not in every task), then
renames it into place: a host has the old copy, the new one, or none, never
a part; two runs installing at once both rename a verified copy.

Variables: ``xenpci_cache_dir`` (the folder of the copies; defaults to
/var/cache/xenpci for root and ~/.cache/xenpci for another user).
"""

from __future__ import annotations

import hashlib
import os
import shlex

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# files/xenpci of the collection, put there by scripts/build-collection.
BINARY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "files", "xenpci")

# Run on the host as the task's user: $1 the folder, $2 the sha256, $3 the
# source (a file, or - for standard input).
INSTALL = r"""
dir=$1 sha=$2 src=$3
fail() { echo "$*" >&2; exit 1; }
umask 022
[ "$(uname -s) $(uname -m)" = "Linux x86_64" ] ||
    fail "the xenpci binary is built for Linux x86_64; this host is $(uname -s) $(uname -m)"
mkdir -p "$dir" || fail "cannot create $dir"
set -- $(stat -L -c '%u %a' "$dir")
[ "$1" = "$(id -u)" ] ||
    fail "$dir belongs to user $1, not to user $(id -u): the binary is not installed where another user can change it"
[ $((0$2 & 022)) = 0 ] || chmod go-w "$dir" || fail "cannot make $dir writable by its owner only"
tmp=$(mktemp "$dir/.xenpci-$sha.XXXXXX") || fail "cannot write in $dir"
trap 'rm -f "$tmp"' EXIT
cat -- "$src" >"$tmp" || fail "cannot write the binary in $dir (is its file system full?)"
chmod 0755 "$tmp" || fail "cannot chmod $tmp"
printf '%s  %s\n' "$sha" "$tmp" | sha256sum -c --status ||
    fail "the copy written in $dir does not have sha256 $sha"
"$tmp" --version >/dev/null 2>&1 ||
    fail "the binary does not run from $dir (a noexec mount? set xenpci_cache_dir to a folder on another one)"
mv -f "$tmp" "$dir/xenpci-$sha" || fail "cannot rename $tmp to $dir/xenpci-$sha"
"""


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class XenpciAction(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        wrap_async = self._task.async_val and not self._connection.has_native_async
        env = {}
        if task_vars.get("xenpci_cache_dir"):
            env["XENPCI_CACHE_DIR"] = str(self._templar.template(task_vars["xenpci_cache_dir"]))
        installed = None
        if wrap_async:
            # The async job's result comes too late to install: ask first.
            ready = self._module(task_vars, dict(env, XENPCI_PROBE="1"), False)
            if "xenpci_install" in ready:
                installed = self._install(ready["xenpci_install"])
                if "failed" in installed:
                    return merge_hash(result, installed)
        res = self._module(task_vars, env, wrap_async)
        if "xenpci_install" in res and installed is None:
            installed = self._install(res["xenpci_install"])
            if "failed" in installed:
                return merge_hash(result, installed)
            res = self._module(task_vars, env, wrap_async)
        if "xenpci_install" in res:
            res.pop("xenpci_install")
            res["msg"] = "the xenpci binary was installed, and still not usable: " + res.get("msg", "")
        if installed:
            res["xenpci_installed"] = installed["path"]
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return merge_hash(result, res)

    def _module(self, task_vars, env, wrap_async):
        """The task's module, with ``env`` added to the task's environment."""
        saved = self._task.environment
        if env:
            self._task.environment = (list(saved) if isinstance(saved, list) else [saved] if saved else []) + [env]
        try:
            return self._execute_module(task_vars=task_vars, wrap_async=wrap_async)
        finally:
            self._task.environment = saved

    def _install(self, want):
        """Installs the collection's binary where the module looks for it:
        {"path": ...}, or a failed result."""
        folder, sha = want.get("dir", ""), want.get("sha256", "")
        if not os.path.isfile(BINARY):
            return {"failed": True, "msg": f"the collection has no xenpci binary at {BINARY}: rebuild it"}
        have = sha256_of(BINARY)
        if have != sha:
            return {"failed": True, "msg": f"the collection's binary {BINARY} has sha256 {have}, its modules "
                                           f"run {sha}: the collection was not built whole; rebuild it"}
        if self._connection.is_pipelining_enabled():
            with open(BINARY, "rb") as f:
                res = self._low_level_execute_command(self._install_command(folder, sha, "-"), in_data=f.read())
        else:
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            remote = self._connection._shell.join_path(tmpdir, "xenpci")
            self._transfer_file(BINARY, remote)
            self._fixup_perms2([tmpdir, remote], execute=False)
            res = self._low_level_execute_command(self._install_command(folder, sha, remote))
        if res["rc"] != 0:
            why = res["stderr"].strip() or res["stdout"].strip() or f"exit code {res['rc']}"
            return {"failed": True, "changed": False, "rc": res["rc"],
                    "msg": f"installing the xenpci binary in {folder} failed: {why}"}
        return {"path": f"{folder}/xenpci-{sha}"}

    @staticmethod
    def _install_command(folder, sha, src):
        return " ".join(shlex.quote(a) for a in ["/bin/sh", "-c", INSTALL, "xenpci-install", folder, sha, src])
