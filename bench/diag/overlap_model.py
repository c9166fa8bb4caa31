"""A throughput model of the forward's two kernels sharing the GPU (docs/DESIGN.md, session 10).

The state kernel runs one walk per state block for the whole sequence; output blocks take whatever block slots are
free. An SM holds one walk (it ends at `walk_us`), two walks (they end at `walk_pair_us`, and no output block fits
there) or none. Output work is measured in slot-microseconds: `output_us` of the output kernel alone with two blocks
on every SM (2 x sms slots), scaled by the number of heads. An SM without a walk offers 2 slots; one with a walk offers
`beside` slots (0: no output block fits beside a walk, the five-warp state block's register sub-partitions; about 1
x the speed of a block on a free SM, minus interference: the four-warp state block of wip/state-192).
The forward ends when the last walk and the output work are both done.

    python3 bench/diag/overlap_model.py                      # session 10's heads sweep, measured vs modelled
    python3 bench/diag/overlap_model.py --beside 0.6 --walks-per-head 14 --walk-us 980 --heads 8
"""

import argparse
import sys

SMS = 132
# session 10, H100 80GB HBM3, p = 2, d = 64, bf16, gated, t = 65536, b = 1 (bench/RESULTS.md)
MEASURED = {4: 806.5, 6: 1140.1, 7: 1301.6, 8: 1439.0}  # forward, µs
WALK_US, WALK_PAIR_US = 754.0, 1110.0                     # state kernel alone: lone walks / two per SM
OUTPUT_US_H8 = 592.0                                      # output kernel alone at h = 8


def forward_us(heads, walks_per_head=20, walk_us=WALK_US, walk_pair_us=WALK_PAIR_US, output_us_h8=OUTPUT_US_H8,
               beside=0.0, sms=SMS):
    """Modelled forward time (µs) for `heads` heads of b = 1."""
    walks = heads * walks_per_head
    pairs = max(0, min(walks - sms, sms))  # SMs with two walks
    singles = min(walks, sms) - pairs
    free = sms - singles - pairs
    work = output_us_h8 * 2 * sms * heads / 8  # slot-µs
    last_walk = walk_pair_us if pairs else walk_us if walks else 0.0
    # piecewise-constant slot rate: until the lone walks end, until the pairs end, then every SM free
    phases = [(walk_us if singles else 0.0, 2 * free + beside * singles), (last_walk, 2 * (free + singles))]
    t, done = 0.0, 0.0
    for end, rate in phases:
        if end <= t:
            continue
        if rate > 0 and done + rate * (end - t) >= work:
            return max(t + (work - done) / rate, last_walk)
        done += rate * (end - t)
        t = end
    return t + (work - done) / (2 * sms)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heads", type=int, nargs="*", default=sorted(MEASURED))
    p.add_argument("--walks-per-head", type=int, default=20)
    p.add_argument("--walk-us", type=float, default=WALK_US)
    p.add_argument("--walk-pair-us", type=float, default=WALK_PAIR_US)
    p.add_argument("--output-us", type=float, default=OUTPUT_US_H8, help="output kernel alone at h = 8")
    p.add_argument("--beside", type=float, default=0.0, help="output block slots on an SM with one walk")
    a = p.parse_args(argv)
    print("| h | modelled µs | measured µs (session 10, five-warp state block) |")
    print("|---:|---:|---:|")
    for h in a.heads:
        m = forward_us(h, a.walks_per_head, a.walk_us, a.walk_pair_us, a.output_us, a.beside)
        print(f"| {h} | {m:.0f} | {MEASURED.get(h, float('nan')):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
