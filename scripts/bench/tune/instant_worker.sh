#!/bin/sh
# A worker that answers at once (protocol v1), so a study's wall time is the coordinator's own
# overhead: suggestion, process spawn, bookkeeping. Its objective is the parameter x itself.
IFS= read -r job
x=$(printf '%s' "$job" | sed -n 's/.*"parameters":{"x":\([-0-9.eE+]*\).*/\1/p')
[ -n "$x" ] || x=0.5
printf '{"event":"ready","name":"instant","version":"1","device":"cpu","protocol":1}\n'
case "$job" in
  *'"action":"train"'*) ;;
  *) printf '{"event":"evaluation","fold":"f","epoch":1,"split":"test","metrics":{"m":%s},"is_best":false}\n' "$x" ;;
esac
printf '{"event":"result","objective":{"metric":"m","mean":%s,"sem":null},"folds":[{"fold":"f","best_epoch":1,"metrics":{"m":%s}}]}\n' "$x" "$x"
