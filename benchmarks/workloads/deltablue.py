"""DeltaBlue: an incremental one-way dataflow constraint solver (Freeman-Benson & Maloney).

Chains of equality constraints and projections through scale constraints, re-planned as edit
constraints come and go: classes, virtual dispatch, list-based work queues.
"""

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "execute"

REQUIRED, STRONG_PREFERRED, PREFERRED, STRONG_DEFAULT, NORMAL, WEAK_DEFAULT, WEAKEST = range(7)
NONE, FORWARD, BACKWARD = range(3)
SIZE = 600
REPEAT = 3


def stronger(a, b):
    return a < b


def weaker(a, b):
    return a > b


def weakest_of(a, b):
    return a if weaker(a, b) else b


class Variable:
    def __init__(self, name, value=0):
        self.name = name
        self.value = value
        self.constraints = []
        self.determined_by = None
        self.mark = 0
        self.walk_strength = WEAKEST
        self.stay = True

    def add_constraint(self, constraint):
        self.constraints.append(constraint)

    def remove_constraint(self, constraint):
        self.constraints.remove(constraint)
        if self.determined_by is constraint:
            self.determined_by = None


class Constraint:
    def __init__(self, strength, planner):
        self.strength = strength
        self.planner = planner

    def add_constraint(self):
        self.add_to_graph()
        self.planner.incremental_add(self)

    def destroy_constraint(self):
        if self.is_satisfied():
            self.planner.incremental_remove(self)
        else:
            self.remove_from_graph()

    def is_input(self):
        return False

    def satisfy(self, mark):
        self.choose_method(mark)
        if not self.is_satisfied():
            if self.strength == REQUIRED:
                raise RuntimeError("could not satisfy a required constraint")
            return None
        self.mark_inputs(mark)
        out = self.output()
        overridden = out.determined_by
        if overridden is not None:
            overridden.mark_unsatisfied()
        out.determined_by = self
        if not self.planner.add_propagate(self, mark):
            raise RuntimeError("cycle encountered")
        out.mark = mark
        return overridden


class UnaryConstraint(Constraint):
    def __init__(self, variable, strength, planner):
        super().__init__(strength, planner)
        self.my_output = variable
        self.satisfied = False
        self.add_constraint()

    def add_to_graph(self):
        self.my_output.add_constraint(self)
        self.satisfied = False

    def remove_from_graph(self):
        self.my_output.remove_constraint(self)
        self.satisfied = False

    def choose_method(self, mark):
        out = self.my_output
        self.satisfied = out.mark != mark and stronger(self.strength, out.walk_strength)

    def is_satisfied(self):
        return self.satisfied

    def mark_inputs(self, mark):
        pass

    def output(self):
        return self.my_output

    def recalculate(self):
        out = self.my_output
        out.walk_strength = self.strength
        out.stay = not self.is_input()
        if out.stay:
            self.execute()

    def mark_unsatisfied(self):
        self.satisfied = False

    def inputs_known(self, mark):
        return True


class StayConstraint(UnaryConstraint):
    def execute(self):
        pass


class EditConstraint(UnaryConstraint):
    def is_input(self):
        return True

    def execute(self):
        pass


class BinaryConstraint(Constraint):
    def __init__(self, v1, v2, strength, planner):
        super().__init__(strength, planner)
        self.v1 = v1
        self.v2 = v2
        self.direction = NONE
        self.add_constraint()

    def choose_method(self, mark):
        v1, v2, strength = self.v1, self.v2, self.strength
        if v1.mark == mark:
            ok = v2.mark != mark and stronger(strength, v2.walk_strength)
            self.direction = FORWARD if ok else NONE
        elif v2.mark == mark:
            ok = v1.mark != mark and stronger(strength, v1.walk_strength)
            self.direction = BACKWARD if ok else NONE
        elif weaker(v1.walk_strength, v2.walk_strength):
            self.direction = BACKWARD if stronger(strength, v1.walk_strength) else NONE
        else:
            self.direction = FORWARD if stronger(strength, v2.walk_strength) else BACKWARD

    def add_to_graph(self):
        self.v1.add_constraint(self)
        self.v2.add_constraint(self)
        self.direction = NONE

    def remove_from_graph(self):
        self.v1.remove_constraint(self)
        self.v2.remove_constraint(self)
        self.direction = NONE

    def is_satisfied(self):
        return self.direction != NONE

    def mark_inputs(self, mark):
        self.input().mark = mark

    def input(self):
        return self.v1 if self.direction == FORWARD else self.v2

    def output(self):
        return self.v2 if self.direction == FORWARD else self.v1

    def recalculate(self):
        source, out = self.input(), self.output()
        out.walk_strength = weakest_of(self.strength, source.walk_strength)
        out.stay = source.stay
        if out.stay:
            self.execute()

    def mark_unsatisfied(self):
        self.direction = NONE

    def inputs_known(self, mark):
        source = self.input()
        return source.mark == mark or source.stay or source.determined_by is None


class EqualityConstraint(BinaryConstraint):
    def execute(self):
        self.output().value = self.input().value


class ScaleConstraint(BinaryConstraint):
    def __init__(self, source, scale, offset, dest, strength, planner):
        self.scale = scale
        self.offset = offset
        super().__init__(source, dest, strength, planner)

    def add_to_graph(self):
        super().add_to_graph()
        self.scale.add_constraint(self)
        self.offset.add_constraint(self)

    def remove_from_graph(self):
        super().remove_from_graph()
        self.scale.remove_constraint(self)
        self.offset.remove_constraint(self)

    def mark_inputs(self, mark):
        super().mark_inputs(mark)
        self.scale.mark = self.offset.mark = mark

    def execute(self):
        if self.direction == FORWARD:
            self.v2.value = self.v1.value * self.scale.value + self.offset.value
        else:
            self.v1.value = (self.v2.value - self.offset.value) // self.scale.value

    def recalculate(self):
        source, out = self.input(), self.output()
        out.walk_strength = weakest_of(self.strength, source.walk_strength)
        out.stay = source.stay and self.scale.stay and self.offset.stay
        if out.stay:
            self.execute()


class Plan(list):
    def execute(self):
        for constraint in self:
            constraint.execute()


class Planner:
    def __init__(self):
        self.current_mark = 0

    def new_mark(self):
        self.current_mark += 1
        return self.current_mark

    def incremental_add(self, constraint):
        mark = self.new_mark()
        overridden = constraint.satisfy(mark)
        while overridden is not None:
            overridden = overridden.satisfy(mark)

    def incremental_remove(self, constraint):
        out = constraint.output()
        constraint.mark_unsatisfied()
        constraint.remove_from_graph()
        unsatisfied = self.remove_propagate_from(out)
        for strength in range(REQUIRED, WEAKEST):
            for candidate in unsatisfied:
                if candidate.strength == strength:
                    self.incremental_add(candidate)

    def make_plan(self, sources):
        mark = self.new_mark()
        plan = Plan()
        todo = list(sources)
        while todo:
            constraint = todo.pop(0)
            out = constraint.output()
            if out.mark != mark and constraint.inputs_known(mark):
                plan.append(constraint)
                out.mark = mark
                self.add_constraints_consuming_to(out, todo)
        return plan

    def extract_plan_from_constraints(self, constraints):
        return self.make_plan(c for c in constraints if c.is_input() and c.is_satisfied())

    def add_propagate(self, constraint, mark):
        todo = [constraint]
        while todo:
            current = todo.pop(0)
            if current.output().mark == mark:
                self.incremental_remove(constraint)
                return False
            current.recalculate()
            self.add_constraints_consuming_to(current.output(), todo)
        return True

    def remove_propagate_from(self, out):
        out.determined_by = None
        out.walk_strength = WEAKEST
        out.stay = True
        unsatisfied = []
        todo = [out]
        while todo:
            variable = todo.pop(0)
            for constraint in variable.constraints:
                if not constraint.is_satisfied():
                    unsatisfied.append(constraint)
            determining = variable.determined_by
            for constraint in variable.constraints:
                if constraint is not determining and constraint.is_satisfied():
                    constraint.recalculate()
                    todo.append(constraint.output())
        return unsatisfied

    def add_constraints_consuming_to(self, variable, collection):
        determining = variable.determined_by
        for constraint in variable.constraints:
            if constraint is not determining and constraint.is_satisfied():
                collection.append(constraint)


def chain_test(n):
    """A chain first = v1 = ... = last; edit the first variable, watch the last follow."""
    planner = Planner()
    chain = [Variable(f"v{i}") for i in range(n + 1)]
    for a, b in zip(chain, chain[1:], strict=False):
        EqualityConstraint(a, b, REQUIRED, planner)
    StayConstraint(chain[-1], STRONG_DEFAULT, planner)
    edit = EditConstraint(chain[0], PREFERRED, planner)
    plan = planner.extract_plan_from_constraints([edit])
    total = 0
    for i in range(100):
        chain[0].value = i
        plan.execute()
        if chain[-1].value != i:
            raise RuntimeError("chain test failed")
        total += chain[-1].value
    edit.destroy_constraint()
    return total + planner.current_mark


def change(planner, variable, value):
    edit = EditConstraint(variable, PREFERRED, planner)
    plan = planner.extract_plan_from_constraints([edit])
    for _ in range(10):
        variable.value = value
        plan.execute()
    edit.destroy_constraint()


def projection_test(n):
    """Pairs dst = src * scale + offset; change either side, then the shared scale/offset."""
    planner = Planner()
    scale = Variable("scale", 10)
    offset = Variable("offset", 1000)
    dests = []
    src = dst = None
    for i in range(n):
        src = Variable(f"src{i}", i)
        dst = Variable(f"dst{i}", i)
        dests.append(dst)
        StayConstraint(src, NORMAL, planner)
        ScaleConstraint(src, scale, offset, dst, REQUIRED, planner)
    change(planner, src, 17)
    if dst.value != 1170:
        raise RuntimeError("projection 1 failed")
    change(planner, dst, 1050)
    if src.value != 5:
        raise RuntimeError("projection 2 failed")
    change(planner, scale, 5)
    if any(d.value != i * 5 + 1000 for i, d in enumerate(dests[:-1])):
        raise RuntimeError("projection 3 failed")
    change(planner, offset, 2000)
    if any(d.value != i * 5 + 2000 for i, d in enumerate(dests[:-1])):
        raise RuntimeError("projection 4 failed")
    return sum(d.value for d in dests) + planner.current_mark


def run(scale=1.0):
    size = max(1, round(SIZE * scale))
    return [(chain_test(size), projection_test(size)) for _ in range(REPEAT)]
