/**
 * The image queue's codec slots (lifecycle/codec-gate.ts): never more callers inside than slots,
 * the line served in arrival order, a waiter whose signal aborts leaves it without taking a slot.
 */
import { CodecGate } from '../src/lifecycle/codec-gate.ts';

const tick = () => new Promise<void>((r) => setImmediate(r));

test('at most `slots` callers hold the gate; the others enter in arrival order as it is released', async () => {
  const gate = new CodecGate(2);
  const entered: number[] = [];
  const leaves: (() => void)[] = [];
  const all = [0, 1, 2, 3, 4].map((i) =>
    gate.enter().then((leave) => {
      entered.push(i);
      leaves[i] = leave;
    }),
  );
  await tick();
  expect(entered).toEqual([0, 1]);
  expect(gate.state).toEqual({ busy: 2, waiting: 3 });
  leaves[1]!();
  await tick();
  expect(entered).toEqual([0, 1, 2]);
  expect(gate.state).toEqual({ busy: 2, waiting: 2 });
  // Releasing twice frees one slot, not two.
  leaves[1]!();
  await tick();
  expect(entered).toEqual([0, 1, 2]);
  leaves[0]!();
  leaves[2]!();
  await Promise.all(all);
  expect(entered).toEqual([0, 1, 2, 3, 4]);
  leaves[3]!();
  leaves[4]!();
  expect(gate.state).toEqual({ busy: 0, waiting: 0 });
});

test('a newcomer does not pass callers already waiting when a slot frees', async () => {
  const gate = new CodecGate(1);
  const first = await gate.enter();
  const order: string[] = [];
  const waiting = gate.enter().then((leave) => {
    order.push('waiting');
    leave();
  });
  first();
  const late = gate.enter().then((leave) => {
    order.push('late');
    leave();
  });
  await Promise.all([waiting, late]);
  expect(order).toEqual(['waiting', 'late']);
});

test('an aborted waiter leaves the line with its reason and takes no slot', async () => {
  const gate = new CodecGate(1);
  const leave = await gate.enter();
  const controller = new AbortController();
  const aborted = gate.enter(controller.signal);
  const next = gate.enter();
  await tick();
  expect(gate.state).toEqual({ busy: 1, waiting: 2 });
  controller.abort(new Error('worker stopping'));
  await expect(aborted).rejects.toThrow('worker stopping');
  expect(gate.state).toEqual({ busy: 1, waiting: 1 });
  leave();
  (await next)();
  expect(gate.state).toEqual({ busy: 0, waiting: 0 });
  // Already aborted: refused at once.
  await expect(gate.enter(controller.signal)).rejects.toThrow('worker stopping');
  expect(gate.state).toEqual({ busy: 0, waiting: 0 });
});
