"""Go: a flat Monte-Carlo go player on a small board, with a fixed random seed.

Each candidate move is scored by random playouts to the end of the game; the player with
the best win rate is chosen. Flood fills for liberties and captures, board copies, a seeded
``random.Random``.
"""

import random

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "is_eye"

SIZE = 7
KOMI = 7.5
SEED = 20240601
MOVES = 1
PLAYOUTS_PER_CANDIDATE = 1
EMPTY, BLACK, WHITE, EDGE = range(4)


class Board:
    def __init__(self, size):
        width = size + 2
        self.cells = [EDGE] * (width * width)
        self.points = [r * width + c for r in range(1, size + 1) for c in range(1, size + 1)]
        for p in self.points:
            self.cells[p] = EMPTY
        self.neighbours = {p: (p - 1, p + 1, p - width, p + width) for p in self.points}
        self.to_move = BLACK
        self.ko = None
        self.passes = 0

    def copy(self):
        other = Board.__new__(Board)
        other.cells = self.cells[:]
        other.points = self.points
        other.neighbours = self.neighbours
        other.to_move = self.to_move
        other.ko = self.ko
        other.passes = self.passes
        return other

    def has_liberty(self, start):
        cells, neighbours = self.cells, self.neighbours
        color = cells[start]
        seen = {start}
        todo = [start]
        while todo:
            for n in neighbours[todo.pop()]:
                value = cells[n]
                if value == EMPTY:
                    return True
                if value == color and n not in seen:
                    seen.add(n)
                    todo.append(n)
        return False

    def remove_group(self, start):
        cells, neighbours = self.cells, self.neighbours
        color = cells[start]
        cells[start] = EMPTY
        removed = [start]
        todo = [start]
        while todo:
            for n in neighbours[todo.pop()]:
                if cells[n] == color:
                    cells[n] = EMPTY
                    removed.append(n)
                    todo.append(n)
        return removed

    def is_eye(self, p, color):
        cells = self.cells
        return all(cells[n] == color or cells[n] == EDGE for n in self.neighbours[p])

    def play(self, p):
        """Play at p (None passes) for the side to move; False if the move is illegal."""
        color = self.to_move
        if p is None:
            self.passes += 1
            self.ko = None
            self.to_move = 3 - color
            return True
        cells = self.cells
        if cells[p] != EMPTY or p == self.ko:
            return False
        other = 3 - color
        cells[p] = color
        captured = []
        for n in self.neighbours[p]:
            if cells[n] == other and not self.has_liberty(n):
                captured.extend(self.remove_group(n))
        if not captured and not self.has_liberty(p):
            cells[p] = EMPTY
            return False
        self.ko = None
        if len(captured) == 1:
            around = [cells[n] for n in self.neighbours[p]]
            if around.count(EMPTY) == 1 and around.count(color) == 0:
                self.ko = captured[0]
        self.passes = 0
        self.to_move = other
        return True

    def candidates(self):
        color = self.to_move
        return [p for p in self.points if self.cells[p] == EMPTY and not self.is_eye(p, color)]

    def score(self):
        """Area score from Black's point of view, komi included."""
        cells = self.cells
        total = -KOMI
        for p in self.points:
            value = cells[p]
            if value == EMPTY:
                around = {cells[n] for n in self.neighbours[p]} - {EDGE}
                value = around.pop() if len(around) == 1 else EMPTY
            if value == BLACK:
                total += 1
            elif value == WHITE:
                total -= 1
        return total


def playout(board, rng, max_moves):
    for _ in range(max_moves):
        if board.passes >= 2:
            break
        moves = board.candidates()
        if moves:
            start = rng.randrange(len(moves))
            for i in range(len(moves)):
                if board.play(moves[(start + i) % len(moves)]):
                    break
            else:
                board.play(None)
        else:
            board.play(None)
    return board.score()


def choose_move(board, rng, limit=None):
    """The candidate with the most playout wins (only the first `limit` candidates if given)."""
    me = board.to_move
    best, best_wins, margins = None, -1, 0.0
    candidates = board.candidates()
    if limit is not None:
        candidates = candidates[:limit]
    for move in candidates:
        wins = 0
        for _ in range(PLAYOUTS_PER_CANDIDATE):
            trial = board.copy()
            if not trial.play(move):
                break
            black_margin = playout(trial, rng, 3 * SIZE * SIZE)
            margins += black_margin
            if (black_margin > 0) == (me == BLACK):
                wins += 1
        if wins > best_wins:
            best, best_wins = move, wins
    return best, margins


def run(scale=1.0):
    rng = random.Random(SEED)
    board = Board(SIZE)
    moves = []
    limit = None if scale >= 1 else max(1, round(SIZE * SIZE * scale))
    for _ in range(MOVES):
        move, margins = choose_move(board, rng, limit)
        board.play(move)
        moves.append((move, margins))
    return moves, board.cells.count(BLACK), board.cells.count(WHITE)
