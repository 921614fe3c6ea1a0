"""Richards: Martin Richards' operating-system scheduler simulation.

An idle task, a worker, two handlers and two devices pass packets around through a tiny
priority scheduler. Object-oriented, attribute- and method-call-heavy.
"""

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "step"

IDLE, WORKER, HANDLER_A, HANDLER_B, DEVICE_A, DEVICE_B = range(6)
KIND_DEVICE, KIND_WORK = 0, 1
BUFFER_SIZE = 4
ITERATIONS = 1


class Packet:
    __slots__ = ("link", "ident", "kind", "datum", "data")

    def __init__(self, link, ident, kind):
        self.link = link
        self.ident = ident
        self.kind = kind
        self.datum = 0
        self.data = [0] * BUFFER_SIZE

    def append_to(self, queue):
        self.link = None
        if queue is None:
            return self
        tail = queue
        while tail.link is not None:
            tail = tail.link
        tail.link = self
        return queue


class Task:
    def __init__(self, scheduler, ident, priority, queue, state):
        self.scheduler = scheduler
        self.ident = ident
        self.priority = priority
        self.queue = queue
        self.packet_pending = state[0]
        self.waiting = state[1]
        self.held = state[2]
        self.link = scheduler.tasks
        scheduler.tasks = self
        scheduler.table[ident] = self

    def runnable(self):
        return not self.held and (self.packet_pending or not self.waiting)

    def take_packet(self):
        packet = self.queue
        self.queue = packet.link
        self.packet_pending = self.queue is not None
        self.waiting = False
        return packet

    def check_priority_add(self, current, packet):
        if self.queue is None:
            self.queue = packet
            self.packet_pending = True
            self.waiting = False
            if self.priority > current.priority:
                return self
        else:
            self.queue = packet.append_to(self.queue)
        return current

    def step(self, packet):
        raise NotImplementedError


class IdleTask(Task):
    def __init__(self, scheduler, ident, priority, count):
        super().__init__(scheduler, ident, priority, None, (False, False, False))
        self.control = 1
        self.count = count

    def step(self, packet):
        sched = self.scheduler
        self.count -= 1
        if self.count == 0:
            return sched.hold_current()
        if self.control & 1 == 0:
            self.control >>= 1
            return sched.release(DEVICE_A)
        self.control = (self.control >> 1) ^ 0xD008
        return sched.release(DEVICE_B)


class WorkerTask(Task):
    def __init__(self, scheduler, ident, priority, queue):
        super().__init__(scheduler, ident, priority, queue, (True, True, False))
        self.destination = HANDLER_A
        self.count = 0

    def step(self, packet):
        sched = self.scheduler
        if packet is None:
            return sched.wait()
        self.destination = HANDLER_B if self.destination == HANDLER_A else HANDLER_A
        packet.ident = self.destination
        packet.datum = 0
        for i in range(BUFFER_SIZE):
            self.count += 1
            if self.count > 26:
                self.count = 1
            packet.data[i] = ord("A") + self.count - 1
        return sched.queue_packet(packet)


class HandlerTask(Task):
    def __init__(self, scheduler, ident, priority, queue):
        super().__init__(scheduler, ident, priority, queue, (True, True, False))
        self.work_in = None
        self.device_in = None

    def step(self, packet):
        sched = self.scheduler
        if packet is not None:
            if packet.kind == KIND_WORK:
                self.work_in = packet.append_to(self.work_in)
            else:
                self.device_in = packet.append_to(self.device_in)
        work = self.work_in
        if work is not None:
            count = work.datum
            if count < BUFFER_SIZE:
                device = self.device_in
                if device is not None:
                    self.device_in = device.link
                    device.datum = work.data[count]
                    work.datum = count + 1
                    return sched.queue_packet(device)
            else:
                self.work_in = work.link
                return sched.queue_packet(work)
        return sched.wait()


class DeviceTask(Task):
    def __init__(self, scheduler, ident, priority):
        super().__init__(scheduler, ident, priority, None, (False, True, False))
        self.pending = None

    def step(self, packet):
        sched = self.scheduler
        if packet is None:
            pending = self.pending
            if pending is None:
                return sched.wait()
            self.pending = None
            return sched.queue_packet(pending)
        self.pending = packet
        return sched.hold_current()


class Scheduler:
    def __init__(self):
        self.tasks = None
        self.table = [None] * 6
        self.current = None
        self.queue_count = 0
        self.hold_count = 0

    def find(self, ident):
        return self.table[ident]

    def hold_current(self):
        self.hold_count += 1
        self.current.held = True
        return self.current.link

    def wait(self):
        self.current.waiting = True
        return self.current

    def release(self, ident):
        task = self.find(ident)
        task.held = False
        if task.priority > self.current.priority:
            return task
        return self.current

    def queue_packet(self, packet):
        task = self.find(packet.ident)
        self.queue_count += 1
        packet.link = None
        packet.ident = self.current.ident
        return task.check_priority_add(self.current, packet)

    def schedule(self):
        self.current = self.tasks
        while self.current is not None:
            task = self.current
            if task.runnable():
                packet = task.take_packet() if task.packet_pending and task.waiting else None
                self.current = task.step(packet)
            else:
                self.current = task.link


def simulate(idle_count=10000):
    sched = Scheduler()
    IdleTask(sched, IDLE, 0, idle_count)
    work = Packet(None, WORKER, KIND_WORK)
    work = Packet(work, WORKER, KIND_WORK)
    WorkerTask(sched, WORKER, 1000, work)
    for handler, device, priority in ((HANDLER_A, DEVICE_A, 2000), (HANDLER_B, DEVICE_B, 3000)):
        queue = Packet(None, device, KIND_DEVICE)
        queue = Packet(queue, device, KIND_DEVICE)
        queue = Packet(queue, device, KIND_DEVICE)
        HandlerTask(sched, handler, priority, queue)
    DeviceTask(sched, DEVICE_A, 4000)
    DeviceTask(sched, DEVICE_B, 5000)
    sched.schedule()
    return sched.queue_count, sched.hold_count


def run(scale=1.0):
    if scale < 1:
        return [simulate(max(1, round(10000 * scale))) for _ in range(ITERATIONS)]
    results = [simulate() for _ in range(ITERATIONS)]
    # The classic Richards self-check: 23246 packets queued, 9297 holds.
    assert results[0] == (23246, 9297), results[0]
    return results
