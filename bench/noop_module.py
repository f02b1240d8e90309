#!/usr/bin/env python3
"""The Python anchor of bench/run: an AnsibleModule that does what a
pci_assignable no-op must at least do (take the arguments, read the host
state, find nothing to change) and exits. Run bare as
`python noop_module.py ARGS.json` with {"ANSIBLE_MODULE_ARGS": {...}}."""
import json
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            devices=dict(type="list", elements="str", required=True, aliases=["bdf"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            rebind=dict(type="bool", default=True),
            persistent=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            method=dict(type="str", default="auto", choices=["auto", "xl", "sysfs"]),
        ),
        supports_check_mode=True,
    )
    with open(os.environ["XENPCI_HOST"]) as f:
        host = json.load(f)
    slots = set(host.get("pciback", {}).get("slots", []))
    missing = [d for d in module.params["devices"] if d not in slots]
    module.exit_json(changed=bool(missing), msg="all devices already as requested")


if __name__ == "__main__":
    main()
