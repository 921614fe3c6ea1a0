"""f_trace_opcodes=True together with f_trace_lines=False: the frame gets 'opcode' events but no
'line' events; a frame with both on gets both, in order. (Set in the 'call' event after
assigning frame.f_trace; without that, on 3.12+ setting f_trace_opcodes there is ignored.)"""

EXPECT = ["call", "return", "opcode", "line"]


def only_opcodes(a):
    b = a + 1
    return b * 2


def both(a):
    return a - 1


def ignored(a):
    return a


def body():
    return only_opcodes(1), both(5), ignored(0)


def run(tr, rec):
    @rec.recording
    def tracer(frame, event, arg):
        if event == "call" and frame.f_code.co_name in ("only_opcodes", "both"):
            frame.f_trace = tracer
            frame.f_trace_opcodes = True
            frame.f_trace_lines = frame.f_code.co_name == "both"
        elif event == "call" and frame.f_code.co_name == "ignored":
            # Without f_trace assigned first this has no effect on 3.12+ (it does on 3.11).
            frame.f_trace_opcodes = True
        return tracer

    tr.settrace(tracer)
    try:
        result = body()
    finally:
        tr.settrace(None)
    return result
