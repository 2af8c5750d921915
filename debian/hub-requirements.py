"""Print, as pinned requirements, what pip's --report says it would add for the hub: the
hub's dependencies that gardien's environment does not have already (gardien itself left
out). Used by debian/rules to fill the gardien-hub package."""

import json
import sys

report = json.load(open(sys.argv[1], encoding="utf-8"))
for item in report["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    if name.lower() != "gardien":
        print(f"{name}=={version}")
