"""A hot loop for conditional breakpoints (tests/test_debugger.py): line 5 is the hot line."""


def step(i, seen):
    value = i * i
    seen.append(value)
    return value


def main():
    seen = []
    for i in range(12):
        step(i, seen)
    print("done", len(seen), seen[-3:], "audit events", len(audits))


# eval() audits each condition it compiles and runs: the counts show how often that happened.
audits = []


def audit(event, args, seen=audits):
    if event == "compile" and args[1] == "<string>":
        seen.append(event)
    elif event == "exec" and getattr(args[0], "co_filename", None) == "<string>":
        seen.append(event)


__import__("sys").addaudithook(audit)
main()
