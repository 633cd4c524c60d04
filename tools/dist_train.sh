#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args...]
# PORT=0 lets the OS pick a free port (one node).
# e.g.   tools/dist_train.sh configs/light_head_rcnn/light-head-rcnn_shufflenetv2-1x_8xb2-150k_coco.py 8
set -euo pipefail
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

if [ "$PORT" = 0 ]; then
    # PORT=0 (one node): the rendezvous store binds a port the OS picks and
    # the workers join through it, so no other process can take it first.
    if [ "$NNODES" != 1 ]; then
        echo "dist_train.sh: PORT=0 needs NNODES=1 (other nodes cannot" \
            "learn the port), got NNODES=$NNODES" >&2
        exit 2
    fi
    RENDEZVOUS=(--rdzv_backend=c10d --rdzv_endpoint="$MASTER_ADDR:0")
else
    RENDEZVOUS=(--master_addr="$MASTER_ADDR" --master_port="$PORT")
fi

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
torchrun \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    "${RENDEZVOUS[@]}" \
    --nproc_per_node="$GPUS" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
