import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoSecretsLeaked, type Redteam, startRedteam } from './harness.js';

/**
 * Red team, processes that outlive their turn and writers on the runtime's stdout (issue #17, items
 * 3 and 4): a turn leaves fork chains and decoys behind that flood the runtime's stdout after the
 * turn, and a writer spills bytes without newlines into it while the turn goes on, to glue them to
 * (and so swallow) the runtime's own lines. No agent process may be alive after the turn, and the
 * turn and the next one must answer promptly.
 */

const TURN_TIMEOUT = 20;
let rt: Redteam;

beforeAll(async () => {
  rt = await startRedteam('outlive', {
    settings: { SANDBOX_TURN_TIMEOUT_SECONDS: String(TURN_TIMEOUT), SANDBOX_PIDS: '512' },
  });
});

afterAll(async () => {
  await rt?.stop();
});

/** Sets $rtpid to the runtime's pid (the node process, not the init that started it). */
const FIND_RUNTIME =
  'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = node ] && grep -q runtime/main.js $p/cmdline 2>/dev/null && rtpid=$(basename $p); done';

/** Counts the attack's processes still alive (bracketed patterns: the counting shell does not match). */
const COUNT_LEFT =
  'n=0; for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q -e "slee[p] 3000" -e "outlive-chai[n]" && n=$((n+1)); done; echo "left=$n"';

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const began = performance.now();
  const value = await run();
  return { value, seconds: (performance.now() - began) / 1000 };
}

describe('red team: nothing outlives its turn', () => {
  it('150 setsid decoys and 4 forking chains that flood stdout after the turn are gone before the next', async () => {
    const session = 'outlive-chains';
    // Each generation forks the next at once and exits (a single pass over /proc never sees them
    // all); the one that finds GO passed (after the turn) floods the runtime's stdout with 900 KB lines.
    const chain =
      ': outlive-chain; if [ $(date +%s) -lt $GO ]; then setsid sh -c "$CHAIN" < /dev/null > /dev/null 2>&1 & else while :; do head -c 900000 /dev/zero | tr "\\0" y; echo; done > /proc/$RT/fd/1; fi';
    const attack = [
      FIND_RUNTIME,
      'for i in $(seq 150); do setsid sleep 3000 < /dev/null > /dev/null 2>&1 & done',
      `export RT=$rtpid GO=$(( $(date +%s) + 2 )) CHAIN='${chain}'`,
      'for c in 1 2 3 4; do setsid sh -c "$CHAIN" < /dev/null > /dev/null 2>&1 & done',
      'sleep 0.2; echo chains-started',
    ].join('\n');
    const first = await rt.ask(session, attack);
    expect(first.text).toContain('chains-started');
    // Time for any survivor to flood: what it writes would land between the turns.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const next = await timed(() => rt.ask(session, COUNT_LEFT));
    const left = Number(/left=(\d+)/.exec(next.value.text)?.[1] ?? 'NaN');
    await rt.row(
      'fork chains + 150 setsid decoys that flood stdout with 900 KB lines after the turn',
      left === 0
        ? `none alive after the turn; next turn answered in ${next.seconds.toFixed(1)} s`
        : `${left} SURVIVED the turn; next turn: ${next.value.kind} after ${next.seconds.toFixed(1)} s`,
      session,
    );
    expect(next.value.kind).toBe('reply');
    expect(left).toBe(0);
    expect(next.seconds).toBeLessThan(TURN_TIMEOUT / 2);
  });

  it('bytes spilled into the runtime’s stdout without newlines during a turn swallow none of its lines', async () => {
    const session = 'outlive-interleave';
    // The writer spills "no-newline-" into the runtime's stdout as fast as it can open it; the tool's
    // 6 KB of output makes the next model request a long line, written in parts between the spills.
    const attack = [
      FIND_RUNTIME,
      // setsid: out of the tool's process group, which goes when the tool's shell exits.
      "setsid sh -c 'while :; do printf no-newline- > /proc/'$rtpid'/fd/1; done' < /dev/null > /dev/null 2>&1 &",
      'sleep 1; head -c 6000 /dev/zero | tr "\\0" a; echo; echo writer-running',
    ].join('\n');
    const turn = await timed(() => rt.ask(session, attack));
    if (turn.value.kind !== 'reply') {
      await rt.row(
        'spill bytes without newlines into the runtime’s stdout while the turn goes on (to swallow its lines)',
        `SWALLOWED: the turn failed after ${turn.seconds.toFixed(1)} s (${turn.value.text.slice(0, 80)})`,
        session,
      );
    }
    expect(turn.value.kind).toBe('reply');
    expect(turn.value.text).toContain('writer-running');
    const next = await timed(() => rt.ask(session, 'echo still-answering'));
    expect(next.value.text).toContain('still-answering');
    await rt.row(
      'spill bytes without newlines into the runtime’s stdout while the turn goes on (to swallow its lines)',
      `turn answered in ${turn.seconds.toFixed(1)} s, the next in ${next.seconds.toFixed(1)} s: no line swallowed`,
      session,
    );
    expect(turn.seconds).toBeLessThan(TURN_TIMEOUT / 2);
  });

  it('the shell waiting for the next call is not kept past the turn (the agent could have taken it over)', async () => {
    const session = 'outlive-waiting-shell';
    // After each bash call the runtime starts a bash, as the agent's uid, blocked reading its next
    // command. A process the call left behind finds it while the model thinks; being the same uid, it
    // could ptrace it or write its memory (/proc/<pid>/mem) and have it run anything later. So the
    // turn's end kills it with the strays, and the next turn's call runs in a fresh one.
    const watcher = [
      // Out of the call's process group by now (setsid ran before this script): the call may end.
      'touch /tmp/watcher.ready',
      'for i in $(seq 300); do',
      '  for p in /proc/[0-9]*; do',
      '    tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "BASH_EXECUTION_STRING <&3" || continue',
      '    (exec 9< $p/mem) 2>/dev/null && mem=open || mem=refused',
      '    echo "waiting=$(basename $p) mem=$mem" > /workspace/waiting; exit',
      '  done',
      '  sleep 0.01',
      'done',
    ].join('\n');
    const attack = [
      `cat > /tmp/watcher.sh <<'EOF'\n${watcher}\nEOF`,
      'setsid bash /tmp/watcher.sh < /dev/null > /dev/null 2>&1 &',
      // The call ends once the watcher is on its own (under gVisor the exec takes a while); the model
      // then thinks 3 s, while the waiting shell is there to be found.
      'until [ -e /tmp/watcher.ready ]; do sleep 0.05; done; echo "watcher started <<pause 3000>>"',
    ].join('\n');
    const first = await rt.ask(session, attack);
    expect(first.text).toContain('watcher started');
    const next = await rt.ask(
      session,
      'cat /workspace/waiting; echo "self=$$"; kill -0 $(sed "s/waiting=\\([0-9]*\\).*/\\1/" /workspace/waiting) 2>/dev/null && echo alive=yes || echo alive=no',
    );
    const waiting = /waiting=(\d+) mem=(\w+)/.exec(next.text);
    // The watcher saw the waiting shell (else this proves nothing).
    expect(waiting?.[1]).toBeDefined();
    const self = /self=(\d+)/.exec(next.text)?.[1];
    await rt.row(
      'a process the call left finds the shell waiting for the next call (same uid: it could ptrace it or write its memory)',
      `its /proc/<pid>/mem ${waiting?.[2] === 'open' ? 'could be opened' : 'was refused'}; ${self !== waiting?.[1] && /alive=no/.test(next.text) ? 'killed with the turn’s strays, the next call ran in a fresh shell' : 'KEPT into the next turn'}`,
      session,
    );
    expect(self).not.toBe(waiting?.[1]);
    expect(next.text).toContain('alive=no');
  });

  it('leaks nothing', async () => {
    await expectNoSecretsLeaked(rt);
  });
});
