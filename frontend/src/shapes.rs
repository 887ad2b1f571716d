//! Shape arithmetic of the DSL: signed axes and NumPy broadcasting.

use kiln_ir::{Shape, TypeError};

/// The axis `axis` of a rank-`rank` tensor, counting from the end if negative
/// (`-1` is the last axis), as PyTorch does.
pub fn normalize_axis(axis: isize, rank: usize) -> Result<usize, TypeError> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(TypeError::Attr(format!(
            "axis {axis} out of range for rank {rank} (expected {}..{rank})",
            -r
        )));
    }
    Ok(a as usize)
}

/// Normalized axes, sorted; repeated axes are an error.
pub fn normalize_axes(axes: &[isize], rank: usize) -> Result<Vec<usize>, TypeError> {
    let mut out = axes
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(TypeError::Attr(format!("axes {axes:?} repeat an axis")));
    }
    Ok(out)
}

/// The NumPy broadcast of two shapes: dimensions align on the right, and each pair
/// must be equal or contain a 1. `None` if they do not broadcast.
///
/// ```
/// use kiln_frontend::broadcast_shapes;
/// use kiln_ir::Shape;
/// let s = broadcast_shapes(&Shape::from([2, 1]), &Shape::from([3])).unwrap();
/// assert_eq!(s, Shape::from([2, 3]));
/// assert!(broadcast_shapes(&Shape::from([2]), &Shape::from([3])).is_none());
/// ```
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    let rank = a.rank().max(b.rank());
    let dim = |s: &Shape, i: usize| {
        // Dimension i of the result, counted from the left, padded with 1s.
        let pad = rank - s.rank();
        if i < pad { 1 } else { s.dim(i - pad) }
    };
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        let (x, y) = (dim(a, i), dim(b, i));
        dims.push(match (x, y) {
            _ if x == y => x,
            (1, _) => y,
            (_, 1) => x,
            _ => return None,
        });
    }
    Some(Shape::new(dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_count_from_the_end_when_negative() {
        assert_eq!(normalize_axis(-1, 3).unwrap(), 2);
        assert_eq!(normalize_axis(0, 3).unwrap(), 0);
        assert_eq!(normalize_axis(-3, 3).unwrap(), 0);
        assert!(normalize_axis(3, 3).is_err());
        assert!(normalize_axis(-4, 3).is_err());
        assert!(normalize_axis(0, 0).is_err());
        assert_eq!(normalize_axes(&[-1, 0], 3).unwrap(), vec![0, 2]);
        let e = normalize_axes(&[2, -1], 3).unwrap_err();
        assert!(e.to_string().contains("repeat"), "{e}");
    }

    #[test]
    fn broadcasting_follows_numpy() {
        let s = |d: &[usize]| Shape::from(d);
        assert_eq!(broadcast_shapes(&s(&[3]), &s(&[2, 3])), Some(s(&[2, 3])));
        assert_eq!(broadcast_shapes(&s(&[2, 1]), &s(&[1, 3])), Some(s(&[2, 3])));
        assert_eq!(broadcast_shapes(&s(&[]), &s(&[4, 5])), Some(s(&[4, 5])));
        assert_eq!(
            broadcast_shapes(&s(&[5, 1, 4]), &s(&[3, 1])),
            Some(s(&[5, 3, 4]))
        );
        assert_eq!(broadcast_shapes(&s(&[2, 3]), &s(&[3, 2])), None);
        assert_eq!(broadcast_shapes(&s(&[0]), &s(&[1])), Some(s(&[0])));
    }
}
