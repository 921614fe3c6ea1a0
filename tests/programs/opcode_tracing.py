"""frame.f_trace_opcodes = True: 'opcode' events (recorded with f_lasti) interleaved with 'line'
events in the frames that enabled it (from the 'call' event after assigning f_trace, or from a
'line' event), none in frames that did not; also disabling it again from an 'opcode' event
part-way through a frame."""

EXPECT = ["call", "line", "return", "opcode"]


def arith(a, b):
    c = a + b
    d = c * 2 if c else -1
    return d


def plain(x):
    return x + 1


def stop_midway():
    values = []
    for i in range(3):
        values.append(i)
    return values


def body():
    return arith(1, 2), plain(3), stop_midway()


def run(tr, rec):
    opcodes_seen = {}

    @rec.recording
    def tracer(frame, event, arg):
        name = frame.f_code.co_name
        if event == "call" and name == "arith":
            # On 3.12+ f_trace_opcodes only takes effect if the frame already has f_trace
            # (which the trampoline sets only after this call event returns).
            frame.f_trace = tracer
            frame.f_trace_opcodes = True
        if event == "line" and name == "stop_midway" and "values" not in opcodes_seen:
            opcodes_seen["values"] = 0
            frame.f_trace_opcodes = True
        if event == "opcode" and name == "stop_midway":
            opcodes_seen[name] = opcodes_seen.get(name, 0) + 1
            if opcodes_seen[name] == 6:
                frame.f_trace_opcodes = False
        return tracer

    tr.settrace(tracer)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result, opcodes_seen
