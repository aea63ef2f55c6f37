"""What a rank sees of torchrun's environment: one JSON line. The launcher starts this under
`python -m torch.distributed.run --nproc_per_node 1` to learn whether torchrun works with this
Python and torch (Debian's torch 1.13 on Python 3.11: it does not start)."""
import json
import os

print(json.dumps({"rank": os.environ.get("RANK"), "worldSize": os.environ.get("WORLD_SIZE"), "localRank": os.environ.get("LOCAL_RANK"), "masterAddr": os.environ.get("MASTER_ADDR")}), flush=True)
