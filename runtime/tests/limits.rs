//! The memory limit (`CompileOptions::memory_limit`): graphs the type checker
//! accepts but whose buffers are too large are a `CompileError` naming the node,
//! its type and the bytes it needs, found before anything is allocated (issue 18).

use kiln_ir::text::parse;
use kiln_ir::{DType, HostTensor, TensorType};
use kiln_runtime::{CompileError, CompileOptions, DEFAULT_MEMORY_LIMIT, Executable};

fn compile(src: &str, options: &CompileOptions) -> Result<Executable, CompileError> {
    Executable::compile_with(&parse(src).unwrap(), options)
}

#[track_caller]
fn refused(src: &str, node: &str, op: &str, ty: &str, bytes: usize) {
    let e = compile(src, &CompileOptions::default())
        .err()
        .expect("refused");
    let text = e.to_string();
    match e {
        CompileError::NodeOverMemoryLimit {
            node: n,
            op: o,
            ty: t,
            bytes: b,
            limit,
        } => {
            assert_eq!(
                (n.as_str(), o, t.to_string(), b),
                (node, op, ty.into(), bytes)
            );
            assert_eq!(limit, DEFAULT_MEMORY_LIMIT);
        }
        other => panic!("{other}"),
    }
    assert!(text.contains(&format!("needs {bytes} bytes")), "{text}");
}

#[test]
fn huge_values_are_refused_before_allocating() {
    refused(
        "fn huge(x: f32[1]) -> (y: f32[17179869184]) {
           %1 = broadcast %0 shape=[17179869184] : f32[17179869184]
           return %1
         }",
        "%1",
        "broadcast",
        "f32[17179869184]",
        1 << 36,
    );
    refused(
        "fn padded(x: f32[3,4]) -> (y: f32[3,4294967300]) {
           %1 = pad %0 low=[0,0] high=[0,4294967296] value=0.0 : f32[3,4294967300]
           return %1
         }",
        "%1",
        "pad",
        "f32[3,4294967300]",
        3 * 4_294_967_300 * 4,
    );
    refused(
        "fn conv(x: f32[1,1,2,2], w: f32[1,1,1,1]) -> (y: f32[1,1,2000002,2000002]) {
           %2 = conv2d %0, %1 stride=[1,1] padding=[1000000,1000000] dilation=[1,1] : f32[1,1,2000002,2000002]
           return %2
         }",
        "%2",
        "conv2d",
        "f32[1,1,2000002,2000002]",
        2_000_002 * 2_000_002 * 4,
    );
    // An argument names itself.
    refused(
        "fn arg(x: f64[4294967296]) -> (y: f64[4294967296]) {
           %1 = neg %0 : f64[4294967296]
           return %1
         }",
        "%0 `x`",
        "input",
        "f64[4294967296]",
        1 << 35,
    );
}

/// Each value under the limit but the plan over it: the arena, constants and
/// outputs together are checked.
#[test]
fn the_whole_plan_is_checked_against_the_limit() {
    let src = "fn two(x: f32[200]) -> (y: f32[200]) {
                 %1 = exp %0 : f32[200]
                 return %1
               }";
    let tight = CompileOptions {
        memory_limit: 1000,
        ..CompileOptions::default()
    };
    match compile(src, &tight).err().expect("refused") {
        e @ CompileError::OverMemoryLimit {
            total,
            arena,
            outputs,
            limit: 1000,
            ..
        } => {
            assert_eq!((arena, outputs, total), (832, 800, 1632));
            assert!(e.to_string().contains("f32[200] (800 bytes)"), "{e}");
        }
        other => panic!("{other}"),
    }
    let roomy = CompileOptions {
        memory_limit: 1632,
        ..CompileOptions::default()
    };
    let mut exe = compile(src, &roomy).unwrap();
    let x = HostTensor::from_fn(&TensorType::new(DType::F32, [200]), |i| i as f64 / 100.0);
    let y = exe.run(&[x]).unwrap();
    assert!((y[0].as_f32().unwrap()[100] - 1f32.exp()).abs() < 1e-6);
}
