#!/usr/bin/env bash
# Run one jaxdiv command on every host of a Cloud TPU VM pod slice (one process per host).
#
#   launch/tpu_pod.sh sync  TPU ZONE           copy this checkout's HEAD to ~/jaxdiv on every worker
#   launch/tpu_pod.sh setup TPU ZONE           make ~/jaxdiv/.venv and install jaxdiv[tpu] there
#   launch/tpu_pod.sh run   TPU ZONE -- ARGS   `python -m jaxdiv ARGS` on all workers at once,
#                                              each logging to ~/jaxdiv/logs/<host>.log
#   launch/tpu_pod.sh stop  TPU ZONE           stop jaxdiv on every worker (after a failure)
#
# Environment: PROJECT (gcloud --project), TFDS_DATA_DIR (on the workers; default
# ~/tensorflow_datasets), GCLOUD (the gcloud binary; default gcloud).
# The processes find each other from the TPU metadata (jaxdiv.distributed); --workdir must be a
# directory every worker sees at the same path (Filestore/NFS or a gcsfuse mount).
set -euo pipefail

usage() { sed -n '2,15p' "$0" >&2; exit 2; }
[[ $# -ge 3 ]] || usage
action=$1 tpu=$2 zone=$3
shift 3
gcloud=${GCLOUD:-gcloud}
extra=()
[[ -n "${PROJECT:-}" ]] && extra+=("--project=${PROJECT}")
ssh_all() {
  "$gcloud" compute tpus tpu-vm ssh "$tpu" --zone="$zone" "${extra[@]}" --worker=all \
    --command="$1"
}

case "$action" in
  sync)
    here=$(cd "$(dirname "$0")/.." && pwd)
    tarball="$(mktemp -d)/jaxdiv.tgz"
    git -C "$here" archive --format=tar.gz -o "$tarball" HEAD  # the committed tree
    "$gcloud" compute tpus tpu-vm scp "$tarball" "$tpu":jaxdiv.tgz --zone="$zone" \
      "${extra[@]}" --worker=all
    ssh_all 'mkdir -p ~/jaxdiv && tar -xzf jaxdiv.tgz -C ~/jaxdiv && rm jaxdiv.tgz'
    ;;
  setup)
    ssh_all 'cd ~/jaxdiv && python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[tpu]"'
    ;;
  run)
    [[ "${1:-}" == "--" ]] || usage
    shift
    [[ $# -ge 1 ]] || usage
    args=$(printf '%q ' "$@")
    data=${TFDS_DATA_DIR:-'$HOME/tensorflow_datasets'}
    ssh_all "set -o pipefail; cd ~/jaxdiv && . .venv/bin/activate && mkdir -p logs && \
TFDS_DATA_DIR=${data} python -m jaxdiv ${args}2>&1 | tee -a logs/\$(hostname).log"
    ;;
  stop)
    ssh_all 'pkill -INT -f "python -m jaxdiv" || true'
    ;;
  *)
    usage
    ;;
esac
