#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests and CI.
#
#   tests/slurm/cluster.sh start    write the config, start munged + slurmctld + slurmd, wait until idle
#   tests/slurm/cluster.sh stop     cancel jobs, stop the daemons (idempotent)
#   tests/slurm/cluster.sh status   print sinfo; exit 0 iff the node responds (idle/mixed/allocated)
#
# Installs nothing: CI installs `slurm-wlm munge` with apt-get (see .ci/run). Runs the daemons as
# root (jobs run as the submitting user). Everything it creates lives under $VHD_SLURM_DIR
# (default /tmp/vhd-slurm), except /etc/slurm/slurm.conf, where sbatch/srun/scontrol look for it
# (a copy stays in the state folder), and /etc/munge/munge.key when absent.
#
# Exit codes: 0 ok, 1 failure (daemon logs printed), 2 cannot start here (Slurm not installed,
# not root), 3 /etc/slurm/slurm.conf belongs to another cluster (left untouched).
set -euo pipefail

DIR="${VHD_SLURM_DIR:-/tmp/vhd-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="# vhd test cluster: written by tests/slurm/cluster.sh"
NODE="$(hostname -s)"
TIMEOUT="${VHD_SLURM_START_TIMEOUT:-60}"
MUNGE_SOCKET="$DIR/munge/munge.socket.2"
export PATH="$PATH:/usr/sbin:/sbin"

die() {
  echo "cluster.sh: $2" >&2
  exit "$1"
}

# The pid in pid file $1 if that process is alive and named $2 (not a reused pid), else nothing.
live_pid() {
  local pid
  [[ -r "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] && echo "$pid"
}

# The node's state word, e.g. idle, mixed, allocated, idle* (not responding), down*, drained.
node_state() {
  timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1
}

responding() {
  case "$(node_state)" in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
  esac
}

write_config() {
  local cpus mem_mb mem=""
  cpus="$(nproc)"
  mem_mb="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null || true)"
  [[ -n "$mem_mb" && "$mem_mb" -gt 0 ]] && mem=" RealMemory=$mem_mb"
  cat >"$DIR/slurm.conf" <<EOF
$MARKER
# (state folder $DIR). Stop it with: tests/slurm/cluster.sh stop
ClusterName=vhd
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: works in containers.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Run pending (and requeued) jobs within a second or two.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,batch_sched_delay=0
JobRequeue=1
ReturnToService=2
# Reject at submission what can never run here (e.g. more CPUs than the node has), not pend.
EnforcePartLimits=ALL
# A finished job stays visible to scontrol for MinJobAge seconds (no accounting, so no sacct).
MinJobAge=300
KillWait=5
InactiveLimit=0
MessageTimeout=10
SlurmdTimeout=30
SlurmctldTimeout=30
Waittime=0
MaxArraySize=100001
MaxJobCount=200000
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
# Trust the numbers below even where the hardware probe of slurmd disagrees (containers).
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  if [[ -f "$CONF" ]] && cmp -s "$CONF" "$DIR/slurm.conf"; then
    return 0
  fi
  if [[ -n "$(live_pid "$DIR/run/slurmctld.pid" slurmctld)" ]]; then
    echo "cluster.sh: note: $CONF changed while slurmctld runs; 'stop' then 'start' to apply" >&2
  fi
  mkdir -p "$(dirname "$CONF")"
  cp "$DIR/slurm.conf" "$CONF"
}

start_munged() {
  local key=/etc/munge/munge.key owner=root
  id munge >/dev/null 2>&1 && owner=munge
  if [[ ! -s "$key" ]]; then
    mkdir -p /etc/munge
    (umask 077 && dd if=/dev/urandom of="$key" bs=1024 count=1 status=none)
    chown "$owner:" /etc/munge "$key"
  fi
  if [[ -z "$(live_pid "$DIR/munge/munged.pid" munged)" ]]; then
    mkdir -p "$DIR/munge" && chmod 755 "$DIR/munge" && chown "$owner:" "$DIR/munge"
    # munged wants its key owned by the user it runs as: the munge user, as Debian installs it.
    runuser -u "$owner" -- munged --socket="$MUNGE_SOCKET" --key-file="$key" \
      --log-file="$DIR/munge/munged.log" --pid-file="$DIR/munge/munged.pid" \
      --seed-file="$DIR/munge/munged.seed" ||
      { tail -n 20 "$DIR/munge/munged.log" >&2 || true; die 1 "munged failed to start"; }
  fi
}

print_logs() {
  local f
  for f in "$DIR/munge/munged.log" "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
    echo "===== tail $f" >&2
    tail -n 20 "$f" >&2 2>/dev/null || echo "(missing)" >&2
  done
}

cmd_start() {
  local t0 missing=() b
  for b in slurmctld slurmd munged sinfo sbatch scontrol; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  ((${#missing[@]} == 0)) ||
    die 2 "missing ${missing[*]}; install with: apt-get install -y slurm-wlm munge"
  if [[ -f "$CONF" ]] && ! grep -qxF "$MARKER" "$CONF"; then
    die 3 "$CONF exists and was not written by this script; refusing to replace it"
  fi
  t0=$SECONDS
  if [[ -z "$(live_pid "$DIR/run/slurmctld.pid" slurmctld)" ||
    -z "$(live_pid "$DIR/run/slurmd.pid" slurmd)" ]]; then
    [[ $EUID -eq 0 ]] || die 2 "starting the daemons needs root"
    mkdir -p "$DIR"/{state,spool,log,run}
    write_config
    start_munged
    # -c: a fresh start forgets the jobs of a previous run.
    [[ -n "$(live_pid "$DIR/run/slurmctld.pid" slurmctld)" ]] || slurmctld -c || {
      print_logs
      die 1 "slurmctld failed to start"
    }
    [[ -n "$(live_pid "$DIR/run/slurmd.pid" slurmd)" ]] || slurmd || {
      print_logs
      die 1 "slurmd failed to start"
    }
  fi
  until responding; do
    if ((SECONDS - t0 >= 3)) && [[ -z "$(live_pid "$DIR/run/slurmctld.pid" slurmctld)" ||
      -z "$(live_pid "$DIR/run/slurmd.pid" slurmd)" ]]; then
      print_logs
      die 1 "slurmctld or slurmd exited (logs above)"
    fi
    if ((SECONDS - t0 >= TIMEOUT)); then
      timeout 10 sinfo -N >&2 || true
      print_logs
      die 1 "node $NODE not idle after ${TIMEOUT}s (state: '$(node_state)')"
    fi
    sleep 0.5
  done
  echo "slurm cluster up: node $NODE $(node_state) (config $CONF, state $DIR, $((SECONDS - t0)) s)"
}

# Stop the process of pid file $1 named $2: SIGTERM, then SIGKILL after $3 s.
stop_pid() {
  local pid i
  pid="$(live_pid "$1" "$2")" || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < $3 * 4; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null || true
}

cmd_stop() {
  local jobs i
  if [[ -n "$(live_pid "$DIR/run/slurmctld.pid" slurmctld)" ]]; then
    # Cancel through Slurm so the jobs' processes go too (slurmstepd outlives slurmd).
    jobs="$(timeout 10 squeue -h -o %A 2>/dev/null || true)"
    if [[ -n "$jobs" ]]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for ((i = 0; i < 30; i++)); do
        [[ -z "$(timeout 10 squeue -h -t R,CG -o %A 2>/dev/null || true)" ]] && break
        sleep 0.5
      done
    fi
    timeout 10 scontrol shutdown >/dev/null 2>&1 || true
  fi
  stop_pid "$DIR/run/slurmd.pid" slurmd 15
  stop_pid "$DIR/run/slurmctld.pid" slurmctld 15
  stop_pid "$DIR/munge/munged.pid" munged 10
  echo "slurm cluster stopped"
}

cmd_status() {
  timeout 10 sinfo -N -l || true
  responding
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die 2 "usage: $0 start|stop|status" ;;
esac
