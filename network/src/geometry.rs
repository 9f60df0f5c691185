//! Geometry in local metres: polylines the simulator moves vehicles along, and
//! distances to them.

/// A polyline in metres east/north of the network's centre, with the distance along
/// it of every point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalShape {
    /// The points.
    pub xy: Vec<(f64, f64)>,
    /// Distance along the line of each point, metres (starts at 0, never decreases).
    pub dist: Vec<f64>,
}

impl LocalShape {
    /// A shape through `xy`.
    pub fn new(xy: Vec<(f64, f64)>) -> Self {
        let mut dist = Vec::with_capacity(xy.len());
        let mut acc = 0.0;
        for (k, p) in xy.iter().enumerate() {
            if k > 0 {
                let q = xy[k - 1];
                acc += ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
            }
            dist.push(acc);
        }
        LocalShape { xy, dist }
    }

    /// Length in metres.
    pub fn length_m(&self) -> f64 {
        self.dist.last().copied().unwrap_or(0.0)
    }

    /// The point `d` metres along the line, with the heading of the segment there
    /// (radians, counter-clockwise from east). `hint` is the segment to start searching
    /// from, and is updated: a vehicle moving along keeps its hint, so a lookup costs O(1).
    pub fn point_at(&self, d: f64, hint: &mut usize) -> (f64, f64, f64) {
        let n = self.dist.len();
        if n < 2 {
            let p = self.xy.first().copied().unwrap_or((0.0, 0.0));
            return (p.0, p.1, 0.0);
        }
        let d = d.clamp(0.0, self.length_m());
        let mut i = (*hint).min(n - 2);
        while i > 0 && self.dist[i] > d {
            i -= 1;
        }
        while i + 2 < n && self.dist[i + 1] < d {
            i += 1;
        }
        *hint = i;
        let (a, b) = (self.xy[i], self.xy[i + 1]);
        let seg = self.dist[i + 1] - self.dist[i];
        let t = if seg > 0.0 {
            (d - self.dist[i]) / seg
        } else {
            0.0
        };
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        (a.0 + dx * t, a.1 + dy * t, dy.atan2(dx))
    }

    /// How far along the line the point nearest to `p` is, metres, looking only at or
    /// after `from` metres (stops are projected in order, never behind the previous one).
    pub fn project_from(&self, p: (f64, f64), from: f64) -> f64 {
        let mut best = (f64::INFINITY, from);
        for (i, w) in self.xy.windows(2).enumerate() {
            if self.dist[i + 1] < from {
                continue;
            }
            let (t, d2) = segment_position(p, w[0], w[1]);
            let along = (self.dist[i] + t * (self.dist[i + 1] - self.dist[i])).max(from);
            if d2 < best.0 {
                best = (d2, along);
            }
        }
        best.1
    }

    /// Where along the line each of `points` lies, in order (a vehicle calls at stops
    /// in sequence, so each lies at or after the one before), with its distance from the
    /// line, metres. A line that passes a place twice (a loop, a street served both
    /// ways) puts each point on the passage that keeps the order with the points
    /// nearest to the line overall, not greedily on the nearest passage.
    pub fn project_in_order(&self, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
        if self.xy.len() < 2 {
            return points.iter().map(|_| (0.0, 0.0)).collect();
        }
        // Candidate places per point: each passage of the line nearest to it (the local
        // minima of the distance along the line), and the line's two ends, so that an
        // order always exists.
        let candidates: Vec<Vec<(f64, f64)>> = points
            .iter()
            .map(|&p| {
                let per_segment: Vec<(f64, f64)> = self
                    .xy
                    .windows(2)
                    .enumerate()
                    .map(|(i, w)| {
                        let (t, d2) = segment_position(p, w[0], w[1]);
                        (
                            self.dist[i] + t * (self.dist[i + 1] - self.dist[i]),
                            d2.sqrt(),
                        )
                    })
                    .collect();
                let n = per_segment.len();
                let mut c: Vec<(f64, f64)> = (0..n)
                    .filter(|&i| {
                        let d = per_segment[i].1;
                        (i == 0 || d < per_segment[i - 1].1)
                            && (i + 1 == n || d <= per_segment[i + 1].1)
                    })
                    .map(|i| per_segment[i])
                    .collect();
                let dist_to = |(x, y): (f64, f64)| ((x - p.0).powi(2) + (y - p.1).powi(2)).sqrt();
                c.push((0.0, dist_to(self.xy[0])));
                c.push((self.length_m(), dist_to(self.xy[n])));
                // The nearest passages are enough; a line passing a place 20 times is
                // not a route.
                c.sort_by(|a, b| a.1.total_cmp(&b.1));
                c.truncate(8);
                c
            })
            .collect();
        // Least total distance over orders that never go back along the line.
        let mut cost: Vec<Vec<(f64, usize)>> = Vec::with_capacity(points.len());
        for (k, here) in candidates.iter().enumerate() {
            let row = here
                .iter()
                .map(|&(along, d)| {
                    if k == 0 {
                        return (d, 0);
                    }
                    candidates[k - 1]
                        .iter()
                        .zip(&cost[k - 1])
                        .enumerate()
                        .filter(|(_, ((prev_along, _), _))| *prev_along <= along)
                        .map(|(j, (_, &(c, _)))| (c + d, j))
                        .min_by(|a, b| a.0.total_cmp(&b.0))
                        .unwrap_or((f64::INFINITY, 0))
                })
                .collect();
            cost.push(row);
        }
        let mut out = vec![(0.0, 0.0); points.len()];
        let Some(last) = cost.last() else {
            return out;
        };
        let mut j = (0..last.len())
            .min_by(|&a, &b| last[a].0.total_cmp(&last[b].0))
            .unwrap_or(0);
        for k in (0..points.len()).rev() {
            out[k] = candidates[k][j];
            j = cost[k][j].1;
        }
        out
    }

    /// Whether the line passes within `radius_m` of `p`.
    pub fn passes_within(&self, p: (f64, f64), radius_m: f64) -> bool {
        let r2 = radius_m * radius_m;
        self.xy
            .windows(2)
            .any(|w| segment_distance2(p, w[0], w[1]) <= r2)
    }
}

/// Where along the segment `a`–`b` the point nearest to `p` is (0 to 1), and its
/// squared distance from `p`.
fn segment_position(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (
        t,
        (p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2),
    )
}

/// Squared distance from `p` to the segment `a`–`b`.
pub fn segment_distance2(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    segment_position(p, a, b).1
}

/// Rounds a coordinate to 6 decimals (about 0.1 m), which keeps payloads short.
pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_at_and_project_follow_the_line() {
        let s = LocalShape::new(vec![(0.0, 0.0), (100.0, 0.0), (100.0, 50.0)]);
        assert_eq!(s.length_m(), 150.0);
        let mut hint = 0;
        assert_eq!(
            s.point_at(120.0, &mut hint),
            (100.0, 20.0, std::f64::consts::FRAC_PI_2)
        );
        assert_eq!(hint, 1);
        // Walking back works from any hint.
        assert_eq!(s.point_at(50.0, &mut hint).0, 50.0);
        assert!((s.project_from((40.0, 7.0), 0.0) - 40.0).abs() < 1e-9);
        assert!((s.project_from((130.0, 30.0), 0.0) - 130.0).abs() < 1e-9);
        // Never behind `from`, even when the point is nearer an earlier part.
        assert!((s.project_from((40.0, 7.0), 110.0) - 110.0).abs() < 1e-9);
        assert!(s.passes_within((50.0, 9.0), 10.0));
        assert!(!s.passes_within((50.0, 11.0), 10.0));
    }

    #[test]
    fn points_in_order_take_the_passage_that_keeps_the_order() {
        // A loop out along y = 0 and back along y = 20, ending where it began.
        let s = LocalShape::new(vec![
            (0.0, 0.0),
            (100.0, 0.0),
            (100.0, 20.0),
            (0.0, 20.0),
            (0.0, 1.0),
        ]);
        // The first call, by the start, is nearer the end of the loop (0 m vs 1 m):
        // greedy projection would put it there and every later call at the end.
        let calls = [(0.0, 1.0), (50.0, 2.0), (50.0, 18.0), (0.0, 1.0)];
        let got: Vec<f64> = s
            .project_in_order(&calls)
            .iter()
            .map(|c| c.0.round())
            .collect();
        assert_eq!(got, vec![0.0, 50.0, 170.0, 239.0]);
        // Far points still get an order, with their distance told.
        let far = s.project_in_order(&[(50.0, 500.0)]);
        assert!((far[0].1 - 480.0).abs() < 1e-9, "{far:?}");
        assert_eq!(LocalShape::new(vec![]).project_in_order(&calls).len(), 4);
    }

    #[test]
    fn degenerate_shapes_do_not_panic() {
        let empty = LocalShape::new(Vec::new());
        let mut hint = 7;
        assert_eq!(empty.point_at(3.0, &mut hint), (0.0, 0.0, 0.0));
        assert_eq!(empty.project_from((1.0, 1.0), 0.0), 0.0);
        let dot = LocalShape::new(vec![(5.0, 5.0), (5.0, 5.0)]);
        assert_eq!(dot.point_at(1.0, &mut hint).0, 5.0);
    }
}
