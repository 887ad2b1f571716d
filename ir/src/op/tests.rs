use super::*;

#[test]
fn syntax_round_trips_for_every_kind() {
    let ops: Vec<Op> = Op::samples().into_iter().filter(|o| !o.is_leaf()).collect();
    for op in ops {
        let attrs = op
            .attrs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(Op::from_syntax(op.mnemonic(), attrs).unwrap(), op);
    }
}

#[test]
fn every_row_of_the_table_is_its_own_kind() {
    for &kind in OpKind::ALL {
        assert_eq!(kind.sample().kind(), kind, "sample of {kind:?}");
        assert_eq!(OpKind::from_mnemonic(kind.mnemonic()), Some(kind));
    }
    let mut names: Vec<&str> = OpKind::ALL.iter().map(|k| k.mnemonic()).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "every kind has its own mnemonic");
}

#[test]
fn family_lists_hold_every_kind_of_their_family() {
    let table = |f: fn(&Op) -> bool| -> Vec<OpKind> {
        OpKind::ALL
            .iter()
            .copied()
            .filter(|k| f(&k.sample()))
            .collect()
    };
    assert_eq!(
        table(|o| matches!(o, Op::Unary(_))),
        UnaryOp::ALL.iter().map(|k| k.kind()).collect::<Vec<_>>()
    );
    assert_eq!(
        table(|o| matches!(o, Op::Binary(_))),
        BinaryOp::ALL.iter().map(|k| k.kind()).collect::<Vec<_>>()
    );
    assert_eq!(
        table(|o| matches!(o, Op::Compare(_))),
        CmpOp::ALL.iter().map(|k| k.kind()).collect::<Vec<_>>()
    );
    assert_eq!(
        table(|o| matches!(o, Op::Reduce { .. })),
        ReduceOp::ALL.iter().map(|k| k.kind()).collect::<Vec<_>>()
    );
}

#[test]
fn non_finite_float_attributes_are_seen() {
    assert!(Op::Unary(UnaryOp::LeakyRelu(0.2)).float_attrs_finite());
    assert!(!Op::Unary(UnaryOp::LeakyRelu(f64::INFINITY)).float_attrs_finite());
    let pad = |value| Op::Pad {
        low: vec![1],
        high: vec![1],
        value,
    };
    assert!(!pad(f64::NAN).float_attrs_finite());
    assert!(pad(-3.0).float_attrs_finite());
}

#[test]
fn attribute_errors_name_the_problem() {
    let e = Op::from_syntax("transpose", vec![]).unwrap_err();
    assert_eq!(e.to_string(), "`transpose` attribute `perm`: missing");
    let e = Op::from_syntax(
        "concat",
        vec![
            ("axis".into(), AttrValue::Int(0)),
            ("bogus".into(), AttrValue::Int(1)),
        ],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`concat` attribute `bogus`: unknown attribute"
    );
    assert!(Op::from_syntax("frobnicate", vec![]).is_err());
    let e = Op::from_syntax("concat", vec![("axis".into(), AttrValue::Int(-1))]).unwrap_err();
    assert!(e.to_string().contains("non-negative"), "{e}");
}
