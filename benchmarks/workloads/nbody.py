"""N-body: the Jovian planets orbiting the Sun, integrated with a fixed time step.

Float arithmetic on lists in a tight loop; few calls per unit of work.
"""

import math

# The function the benchmark's single-function filters select (`functions=[...]`).
HOT_FUNCTION = "advance"

PI = math.pi
SOLAR_MASS = 4 * PI * PI
DAYS_PER_YEAR = 365.24
STEPS = 12000
DT = 0.01


def make_system():
    """(position, velocity, mass) per body: Sun, Jupiter, Saturn, Uranus, Neptune."""
    planets = [
        (
            [4.84143144246472090e00, -1.16032004402742839e00, -1.03622044471123109e-01],
            [1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05],
            9.54791938424326609e-04,
        ),
        (
            [8.34336671824457987e00, 4.12479856412430479e00, -4.03523417114321381e-01],
            [-2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05],
            2.85885980666130812e-04,
        ),
        (
            [1.28943695621391310e01, -1.51111514016986312e01, -2.23307578892655734e-01],
            [2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05],
            4.36624404335156298e-05,
        ),
        (
            [1.53796971148509165e01, -2.59193146099879641e01, 1.79258772950371181e-01],
            [2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05],
            5.15138902046611451e-05,
        ),
    ]
    bodies = [([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], SOLAR_MASS)]
    for pos, vel, mass in planets:
        bodies.append((pos, [v * DAYS_PER_YEAR for v in vel], mass * SOLAR_MASS))
    return bodies


def pairs(bodies):
    return [(bodies[i], bodies[j]) for i in range(len(bodies)) for j in range(i + 1, len(bodies))]


def offset_momentum(bodies):
    px = py = pz = 0.0
    for _, (vx, vy, vz), mass in bodies:
        px -= vx * mass
        py -= vy * mass
        pz -= vz * mass
    _, sun_v, sun_m = bodies[0]
    sun_v[0] = px / sun_m
    sun_v[1] = py / sun_m
    sun_v[2] = pz / sun_m


def energy(bodies, body_pairs):
    e = 0.0
    for _, (v1, v2, v3), m in bodies:
        e += 0.5 * m * (v1 * v1 + v2 * v2 + v3 * v3)
    for ((x1, y1, z1), _, m1), ((x2, y2, z2), _, m2) in body_pairs:
        dx, dy, dz = x1 - x2, y1 - y2, z1 - z2
        e -= (m1 * m2) / math.sqrt(dx * dx + dy * dy + dz * dz)
    return e


def advance(bodies, body_pairs, steps, dt):
    for _ in range(steps):
        for ([x1, y1, z1], v1, m1), ([x2, y2, z2], v2, m2) in body_pairs:
            dx = x1 - x2
            dy = y1 - y2
            dz = z1 - z2
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** -1.5)
            b1 = m1 * mag
            b2 = m2 * mag
            v1[0] -= dx * b2
            v1[1] -= dy * b2
            v1[2] -= dz * b2
            v2[0] += dx * b1
            v2[1] += dy * b1
            v2[2] += dz * b1
        for r, (vx, vy, vz), _ in bodies:
            r[0] += dt * vx
            r[1] += dt * vy
            r[2] += dt * vz


def run(scale=1.0):
    bodies = make_system()
    body_pairs = pairs(bodies)
    offset_momentum(bodies)
    before = energy(bodies, body_pairs)
    advance(bodies, body_pairs, max(1, round(STEPS * scale)), DT)
    after = energy(bodies, body_pairs)
    return (round(before, 12), round(after, 12))
