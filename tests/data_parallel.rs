//! Data-parallel training in one process: members of a `LocalGroup` on threads,
//! each with its shard of a global batch, against one process on the whole batch.

use std::sync::Arc;
use std::time::Duration;

use kiln::dist::{self, Collective, CollectiveError, LocalGroup};
use kiln::prelude::*;

#[path = "support/ddp.rs"]
mod ddp;
use ddp::*;

/// `size` members on threads against one process on the global batch of 16.
fn check(optimizer: &(dyn Optimizer + Sync), size: usize, bn: bool) {
    let rows = 16;
    let want = one_process(optimizer, rows, if bn { size } else { 1 }, bn);
    let got: Vec<(Values, Vec<f64>)> =
        LocalGroup::run(size, |member| member_run(member, optimizer, rows, bn));
    for (rank, member) in got.iter().enumerate() {
        check_member(&want, member, rank, size);
        // Every member holds bit-identical trained parameters.
        for ((name, a), (_, b)) in got[0].0.iter().zip(&member.0) {
            if !is_buffer(name) {
                assert_eq!(a, b, "{name}: rank 0 and rank {rank} differ");
            }
        }
    }
    check_trained(&want.0, rows, bn);
}

#[test]
fn sgd_on_two_members_matches_one_process() {
    check(&Sgd::new(0.1).momentum(0.9), 2, false);
}

#[test]
fn adam_on_two_members_matches_one_process() {
    check(&Adam::new(0.01), 2, false);
}

#[test]
fn adam_on_four_members_matches_one_process() {
    check(&Adam::new(0.01), 4, false);
}

#[test]
fn sgd_with_batch_norm_matches_one_process_with_per_shard_statistics() {
    check(&Sgd::new(0.1).momentum(0.9), 2, true);
}

#[test]
fn adam_with_batch_norm_matches_one_process_with_per_shard_statistics() {
    check(&Adam::new(0.01), 2, true);
}

#[test]
fn a_non_finite_loss_on_one_member_fails_every_member_naming_it() {
    let results: Vec<(Result<f64, TrainError>, Values, Values)> = LocalGroup::run(2, |member| {
        let rank = member.rank();
        let g = GraphBuilder::new("member");
        let loss = classifier(&g, 8, 1, false, 7);
        let mut step = TrainStep::builder(&loss)
            .data_parallel(member)
            .build(&Sgd::new(0.1))
            .unwrap();
        let (x, labels) = global_batch(0, 16);
        let (mut x, labels) = (shard(&x, rank, 2), shard(&labels, rank, 2));
        let before = values(&step);
        if rank == 1 {
            let mut v = x.as_f32().unwrap().to_vec();
            v[3] = f32::NAN;
            x = HostTensor::from_f32([8, FEATURES], v).unwrap();
        }
        let result = step.run(&[("x", &x), ("labels", &labels)]).map(|o| o.loss);
        (result, before, values(&step))
    });
    for (rank, (result, before, after)) in results.into_iter().enumerate() {
        match result {
            Err(TrainError::NonFiniteLoss(l)) if rank == 1 => assert!(l.is_nan()),
            Err(TrainError::Collective(CollectiveError::RankFailed {
                rank: 1,
                size: 2,
                reason,
            })) if rank == 0 => {
                assert!(reason.contains("NaN"), "{reason}");
            }
            other => panic!("rank {rank}: {other:?}"),
        }
        assert_eq!(before, after, "rank {rank} changed its parameters");
    }
}

#[test]
fn check_all_names_the_failed_member() {
    let results: Vec<Result<(), CollectiveError>> = LocalGroup::run(3, |m| {
        let status = if m.rank() == 2 {
            Err("bad batch".to_string())
        } else {
            Ok(())
        };
        dist::check_all(&*m, status)
    });
    for (rank, r) in results.iter().enumerate() {
        match r {
            Err(CollectiveError::RankFailed {
                rank: 2,
                size: 3,
                reason,
            }) => {
                if rank == 2 {
                    assert_eq!(reason, "bad batch");
                }
            }
            other => panic!("rank {rank}: {other:?}"),
        }
    }
}

#[test]
fn a_member_that_never_joins_is_named_after_the_timeout() {
    let group = LocalGroup::with_timeout(2, Duration::from_millis(200));
    let mut v = [1.0f32, 2.0];
    let err = group[0].all_reduce_f32(&mut v).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("rank(s) [1] did not join"), "{message}");
}

#[test]
fn members_with_different_parameters_are_refused() {
    let results: Vec<Result<(), String>> = LocalGroup::run(2, |member| {
        let g = GraphBuilder::new("member");
        // Rank 1 has a wider hidden layer.
        let x = g.input("x", DType::F32, [4, 3]);
        let width = 4 + member.rank();
        let h = nn::Linear::new(&g, "fc", 3, width, &mut Rng::seed(1)).forward(&x);
        let loss = h.square().sum_all();
        TrainStep::builder(&loss)
            .data_parallel(member)
            .build(&Sgd::new(0.1))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    for r in results {
        let message = r.unwrap_err();
        assert!(message.contains("parameters differ"), "{message}");
    }
}

#[test]
fn a_data_parallel_step_is_not_run_interpreted() {
    let member: Arc<dyn Collective> = LocalGroup::new(1).remove(0);
    let g = GraphBuilder::new("single");
    let loss = classifier(&g, 4, 1, false, 3);
    let mut step = TrainStep::builder(&loss)
        .data_parallel(member)
        .build(&Sgd::new(0.1))
        .unwrap();
    let (x, labels) = global_batch(0, 4);
    let err = step
        .run_interpreted(&[("x", &x), ("labels", &labels)])
        .unwrap_err();
    assert!(matches!(err, TrainError::DataParallel(_)), "{err}");
    // A group of one trains like no group at all.
    let out = step.run(&[("x", &x), ("labels", &labels)]).unwrap();
    let g = GraphBuilder::new("plain");
    let mut plain = TrainStep::new(&classifier(&g, 4, 1, false, 3), &Sgd::new(0.1)).unwrap();
    let want = plain.run(&[("x", &x), ("labels", &labels)]).unwrap();
    assert_eq!(out.loss, want.loss);
    assert_eq!(values(&step), values(&plain));
}

#[test]
fn shards_cover_the_data_once() {
    let data = TensorDataset::new(vec![(
        "x",
        HostTensor::from_f32([7, 1], (0..7).map(|i| i as f32 + 0.5).collect()).unwrap(),
    )])
    .unwrap();
    let mut seen: Vec<f32> = (0..3)
        .flat_map(|r| {
            data.shard(r, 3)
                .get("x")
                .unwrap()
                .as_f32()
                .unwrap()
                .to_vec()
        })
        .collect();
    seen.sort_by(f32::total_cmp);
    assert_eq!(seen, (0..7).map(|i| i as f32 + 0.5).collect::<Vec<_>>());
    assert_eq!(data.shard(0, 3).len(), 3);
    assert_eq!(data.shard(2, 3).len(), 2);
}

#[test]
fn a_step_makes_one_all_reduce_call_for_all_gradients_and_losses() {
    let member: Arc<dyn Collective> = LocalGroup::new(1).remove(0);
    let g = GraphBuilder::new("single");
    let loss = classifier(&g, 4, 1, true, 3);
    let mut step = TrainStep::builder(&loss)
        .data_parallel(member)
        .build(&Adam::new(0.1))
        .unwrap();
    let program = step.compile().unwrap().program().to_string();
    assert_eq!(program.matches("all_reduce").count(), 1, "{program}");
    // The graph's one all_reduce sums every trained parameter's gradient (fc1, fc2,
    // the batch norm's weight and bias) plus one loss per member.
    let graph = step.graph();
    let ar: Vec<_> = graph
        .node_ids()
        .map(|id| graph.node(id))
        .filter(|n| matches!(n.op, kiln::ir::Op::AllReduce))
        .collect();
    assert_eq!(ar.len(), 1);
    let numel: usize = step
        .trainable()
        .iter()
        .map(|n| step.params().get(n).unwrap().numel())
        .sum();
    assert_eq!(ar[0].ty.shape.numel(), numel + 1);
}

#[test]
fn rank_0_writes_the_checkpoint_and_sends_it_when_loading() {
    let dir = kiln_testutil::TempDir::new("ddp-checkpoint");
    let paths: Vec<std::path::PathBuf> = (0..2)
        .map(|r| dir.path().join(format!("rank{r}.safetensors")))
        .collect();
    let paths = &paths;
    // Train, each member saving to its own path: only rank 0's is written.
    let trained: Vec<Values> = LocalGroup::run(2, |member| {
        let rank = member.rank();
        let g = GraphBuilder::new("member");
        let loss = classifier(&g, 8, 1, false, 100 + rank as u64);
        let mut step = TrainStep::builder(&loss)
            .data_parallel(member)
            .build(&Adam::new(0.01))
            .unwrap();
        let (x, labels) = global_batch(0, 16);
        let (x, labels) = (shard(&x, rank, 2), shard(&labels, rank, 2));
        step.run(&[("x", &x), ("labels", &labels)]).unwrap();
        step.save_checkpoint(&paths[rank]).unwrap();
        values(&step)
    });
    assert!(paths[0].exists() && !paths[1].exists());
    // Fresh members with other initial values load: rank 1 is given the path rank
    // 0 never wrote, and still gets rank 0's values. Then rank 0's file is missing:
    // every member fails.
    let results: Vec<(Values, String)> = LocalGroup::run(2, |member| {
        let rank = member.rank();
        let g = GraphBuilder::new("member");
        let loss = classifier(&g, 8, 1, false, 500 + rank as u64);
        let mut step = TrainStep::builder(&loss)
            .data_parallel(member)
            .build(&Adam::new(0.01))
            .unwrap();
        step.load_checkpoint(&paths[rank]).unwrap();
        let loaded = values(&step);
        let missing = paths[0].with_extension("missing");
        let err = step.load_checkpoint(&missing).unwrap_err().to_string();
        (loaded, err)
    });
    for (rank, (loaded, err)) in results.iter().enumerate() {
        assert_eq!(loaded, &trained[0], "rank {rank}");
        let want = if rank == 0 {
            "missing"
        } else {
            "rank 0 of 2 stopped"
        };
        assert!(err.contains(want), "rank {rank}: {err}");
    }
}

fn network() -> kiln::Network {
    kiln::Network::new("net", &["x"], |g, x| {
        let mut rng = Rng::seed(9);
        let fc1 = nn::Linear::new(g, "fc1", FEATURES, 8, &mut rng);
        let fc2 = nn::Linear::new(g, "fc2", 8, CLASSES, &mut rng);
        fc2.forward(&fc1.forward(&x[0]).relu())
    })
    .with_loss(&["labels"], |logits, t| loss::cross_entropy(logits, &t[0]))
    .with_optimizer(Adam::new(0.01))
}

#[test]
fn a_network_trains_data_parallel_like_one_process() {
    let mut one = network();
    for s in 0..STEPS {
        let (x, labels) = global_batch(s, 16);
        one.train(&[("x", &x), ("labels", &labels)]).unwrap();
    }
    let got: Vec<Vec<(String, Vec<f64>)>> = LocalGroup::run(2, |member| {
        let rank = member.rank();
        let mut net = network().data_parallel(member);
        if rank == 1 {
            // A prediction fills rank 1's store before training; then
            // its values drift. Training starts from rank 0's anyway.
            let (x, _) = global_batch(0, 2);
            net.predict(&[("x", &x)]).unwrap();
            let bias = HostTensor::full(DType::F32, [8], 5.0);
            net.params_mut().set("fc1.bias", bias).unwrap();
        }
        for st in 0..STEPS {
            let (x, labels) = global_batch(st, 16);
            let (x, labels) = (shard(&x, rank, 2), shard(&labels, rank, 2));
            net.train(&[("x", &x), ("labels", &labels)]).unwrap();
        }
        net.params()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_f64_vec()))
            .collect()
    });
    for (rank, params) in got.iter().enumerate() {
        for (name, v) in params {
            let want = one.params().get(name).unwrap().to_f64_vec();
            let d = max_diff(&want, v);
            assert!(d < TOLERANCE, "{name} on rank {rank} differs by {d}");
        }
    }
}
