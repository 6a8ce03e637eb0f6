#!/usr/bin/env bash
# Stand up, check and tear down the test infrastructure of theseus's dispatch tests:
# a real sshd (user ci_ssh, the "remote host") and a real single-node SLURM cluster
# (munged, slurmctld, slurmd, two fake GPUs as GRES), all on 127.0.0.1, no systemd.
#
#   bash scripts/ci-infra.sh up      install what is missing, configure, start, check
#   bash scripts/ci-infra.sh check   health check only
#   bash scripts/ci-infra.sh down    cancel jobs, stop every daemon it started, by pid
#
# Debian 12 (or newer), run as root. Idempotent: `up` on a running setup restarts it
# cleanly. Settings (environment): INFRA_DIR (/tmp/ci-infra), SSH_PORT (2222),
# SSH_USER (ci_ssh), FAKE_GPUS (2).
#
# What the tests get:
#   ssh -F $INFRA_DIR/ssh/ssh_config ci-ssh     a login as $SSH_USER (bare PATH, /usr/bin/python3)
#   sinfo / sbatch / squeue / scancel           work as they are, locally and over ssh
set -euo pipefail

INFRA_DIR=${INFRA_DIR:-/tmp/ci-infra}
SSH_PORT=${SSH_PORT:-2222}
SSH_USER=${SSH_USER:-ci_ssh}
FAKE_GPUS=${FAKE_GPUS:-2}
SSH_DIR=$INFRA_DIR/ssh
SLURM_DIR=$INFRA_DIR/slurm
PIDS=$INFRA_DIR/pids
LOGS=$INFRA_DIR/logs
export DEBIAN_FRONTEND=noninteractive

say() { printf '[ci-infra %s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { say "FATAL: $*"; exit 1; }

# poll SECONDS CMD...: run CMD every 0.1 s until it succeeds or SECONDS pass
poll() {
  local until=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < until)) || return 1
    sleep 0.1
  done
}

# daemon NAME CMD...: start CMD in the background, its pid in $PIDS/NAME
daemon() {
  local name=$1; shift
  mkdir -p "$PIDS" "$LOGS"
  "$@" >>"$LOGS/$name.out" 2>&1 &
  echo $! >"$PIDS/$name"
}

# running PID: alive and not a zombie (a daemon whose parent shell left stays <defunct> until init reaps it)
running() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

stop() {
  local name=$1 file=$PIDS/$1 pid
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  if running "$pid"; then
    kill "$pid" 2>/dev/null || true
    if ! poll 15 bash -c "! { st=\$(ps -o stat= -p $pid) && [[ \$st != Z* ]]; }"; then
      say "$name ($pid) ignored SIGTERM; SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
  say "stopped $name ($pid)"
}

install_missing() {
  local wanted=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || wanted+=("$pkg")
  done
  ((${#wanted[@]})) || return 0
  say "apt-get install ${wanted[*]}"
  if [[ -z ${APT_FRESH:-} ]]; then
    apt-get update -qq
    APT_FRESH=1
  fi
  apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
}

# ------------------------------------------------------------------------------ ssh

ssh_up() {
  # procps: ps/pgrep (this script, the tests); python3 + venv: the remote user's interpreter
  install_missing openssh-server openssh-client procps python3 python3-venv
  stop sshd
  rm -rf "$SSH_DIR"
  mkdir -p "$SSH_DIR/keys"
  install -d -m 0755 /run/sshd # sshd -t: "Missing privilege separation directory"
  ssh-keygen -q -t ed25519 -N '' -C ci-infra-host -f "$SSH_DIR/host_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C ci-infra-client -f "$SSH_DIR/id_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C ci-infra-stranger -f "$SSH_DIR/stranger_ed25519" # a key sshd refuses
  id "$SSH_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$SSH_USER"
  usermod -p '*' "$SSH_USER" # '!' (useradd's default) counts as a locked account without PAM
  cp "$SSH_DIR/id_ed25519.pub" "$SSH_DIR/keys/$SSH_USER"
  cp "$SSH_DIR/id_ed25519.pub" "$SSH_DIR/keys/root"
  chmod 0755 "$SSH_DIR" "$SSH_DIR/keys"
  chmod 0644 "$SSH_DIR"/keys/* # sshd reads them as the target user
  cat >"$SSH_DIR/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/host_ed25519
PidFile $SSH_DIR/sshd.pid
AuthorizedKeysFile $SSH_DIR/keys/%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# the key files live under /tmp (mode 1777), which StrictModes refuses
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 100
EOF
  /usr/sbin/sshd -t -f "$SSH_DIR/sshd_config"
  daemon sshd /usr/sbin/sshd -D -e -f "$SSH_DIR/sshd_config" # an absolute path: sshd re-executes itself
  # the host key is pinned in a known_hosts file: host keys are checked, as a user's config would
  printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$SSH_DIR/host_ed25519.pub")" >"$SSH_DIR/known_hosts"
  cat >"$SSH_DIR/ssh_config" <<EOF
# the specific block first: the first value found for an option wins
Host ci-ssh-root
  User root
Host ci-ssh-closed
  Port 1
# IdentityFile accumulates over matching blocks: each alias gets its key in a block of its own
Host ci-ssh-stranger
  IdentityFile $SSH_DIR/stranger_ed25519
Host ci-ssh ci-ssh-root ci-ssh-closed
  IdentityFile $SSH_DIR/id_ed25519
Host ci-ssh ci-ssh-root ci-ssh-closed ci-ssh-stranger
  HostName 127.0.0.1
  Port $SSH_PORT
  User $SSH_USER
  IdentitiesOnly yes
  UserKnownHostsFile $SSH_DIR/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
EOF
  chmod 0644 "$SSH_DIR/ssh_config" "$SSH_DIR/known_hosts"
  chmod 0600 "$SSH_DIR/id_ed25519" "$SSH_DIR/stranger_ed25519"
  poll 10 ssh -F "$SSH_DIR/ssh_config" ci-ssh true || { cat "$LOGS/sshd.out" >&2; fail "sshd does not answer"; }
  say "sshd up on 127.0.0.1:$SSH_PORT (ssh -F $SSH_DIR/ssh_config ci-ssh)"
}

ssh_check() {
  [[ $(ssh -F "$SSH_DIR/ssh_config" ci-ssh 'echo ok') == ok ]] || fail "ssh as $SSH_USER failed"
  [[ $(ssh -F "$SSH_DIR/ssh_config" ci-ssh 'command -v python3') == /usr/bin/python3 ]] ||
    fail "$SSH_USER has no /usr/bin/python3 on its PATH"
  say "ssh check ok"
}

# ------------------------------------------------------------------------------ slurm

slurm_up() {
  install_missing slurmctld slurmd slurm-client munge
  slurm_down
  rm -rf "$SLURM_DIR"
  mkdir -p "$SLURM_DIR"/{state,spool,log,jobs,fakedev}
  chmod 1777 "$SLURM_DIR/jobs"

  [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey -c
  install -d -o munge -g munge -m 0755 /run/munge
  # as the munge user (root is refused); setpriv keeps $! = munged's own pid
  daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
  poll 10 bash -c 'munge -n </dev/null | unmunge' || fail "munged does not answer"

  local hw mem gres=""
  hw=$(/usr/sbin/slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //; s/ RealMemory=[0-9]*//')
  mem=$(($(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 9 / 10))
  if ((FAKE_GPUS > 0)); then
    # a GPU needs a File= that is a character device: symlinks to /dev/null are accepted
    for ((i = 0; i < FAKE_GPUS; i++)); do ln -sf /dev/null "$SLURM_DIR/fakedev/nvidia$i"; done
    gres="Gres=gpu:$FAKE_GPUS"
    printf 'AutoDetect=off\nNodeName=localhost Name=gpu File=%s/fakedev/nvidia[0-%d]\n' \
      "$SLURM_DIR" $((FAKE_GPUS - 1)) >/etc/slurm/gres.conf
  else
    rm -f /etc/slurm/gres.conf
  fi
  # in /etc/slurm (not $SLURM_CONF) so ssh sessions find it too
  cat >/etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
# cgroup plugins fail every job step in a container without the freezer hierarchy
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=300
# start a job about 1 s after sbatch instead of 3 s
SchedulerParameters=batch_sched_delay=0
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_DIR/log/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 $hw RealMemory=$mem $gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  daemon slurmctld /usr/sbin/slurmctld -D
  poll 30 scontrol ping || fail "slurmctld does not answer: $(tail -5 "$SLURM_DIR/log/slurmctld.log")"
  daemon slurmd /usr/sbin/slurmd -D -N localhost
  poll 30 bash -c '[[ $(sinfo -h -n localhost -o %T) == idle ]]' || fail "node not idle: $(sinfo -h -N -o '%T %E')"
  say "slurm up: $(sinfo -h -o '%P %a %D %T %G')"
}

slurm_check() {
  local job
  job=$(sbatch --parsable -J ci-health -o "$SLURM_DIR/jobs/health-%j.out" --wrap 'echo hello from $SLURM_JOB_ID')
  poll 60 grep -q "hello from $job" "$SLURM_DIR/jobs/health-$job.out" || fail "health job $job did not run"
  if ((FAKE_GPUS > 0)); then
    job=$(sbatch --parsable --gres=gpu:1 -o "$SLURM_DIR/jobs/health-%j.out" --wrap 'echo CVD=$CUDA_VISIBLE_DEVICES')
    poll 60 grep -q CVD=0 "$SLURM_DIR/jobs/health-$job.out" || fail "GRES job $job did not get a GPU"
  fi
  say "slurm check ok"
}

slurm_down() {
  if [[ -f $PIDS/slurmctld ]] && scontrol ping >/dev/null 2>&1; then
    scancel --partition=debug 2>/dev/null || true # job processes outlive slurmd otherwise
    poll 45 bash -c '[[ -z $(squeue -h -t R,CG -o %i) ]]' || say "jobs still running: $(squeue -h)"
  fi
  stop slurmd
  stop slurmctld
  stop munged
}

case ${1:-} in
  up)
    mkdir -p "$INFRA_DIR"
    ssh_up
    ssh_check
    slurm_up
    slurm_check
    say "all up in ${SECONDS}s"
    ;;
  check)
    ssh_check
    slurm_check
    ;;
  down)
    slurm_down
    stop sshd
    ;;
  *)
    echo "usage: $0 up|check|down" >&2
    exit 2
    ;;
esac
