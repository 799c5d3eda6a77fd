//! The model trained on a generated workload, judged on its held-out last day against the
//! baselines and the generator's truth, and its artifact as serving would read it.

use std::collections::HashMap;
use std::sync::OnceLock;

use aperture_ingest::generate::{Spec, Workload, generate};
use aperture_ranking::eval::{self, BASELINES, CEILING, MODEL};
use aperture_ranking::model::{self, newest_accepted};
use aperture_ranking::{Artifact, Dataset, Report};
use aperture_schema::Config;
use aperture_schema::truth::{Probabilities, Task};

struct Trained {
    workload: Workload,
    data: Dataset,
    artifact: Artifact,
}

fn trained() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        let workload = generate(&Spec {
            seed: 11,
            users: 2_000,
            days: 3.0,
            ..Spec::default()
        });
        let config = Config::load(None).unwrap();
        let truth = truth_of(&workload);
        let artifact = aperture_ranking::train(&workload.events, Some(&truth), &config).unwrap();
        let data = Dataset::from_events(&workload.events, &config, &artifact.topics);
        Trained {
            workload,
            data,
            artifact,
        }
    })
}

fn truth_of(w: &Workload) -> HashMap<String, Probabilities> {
    w.impressions
        .iter()
        .map(|t| (t.event_id.clone(), t.p))
        .collect()
}

fn report() -> &'static Report {
    trained().artifact.metrics.as_ref().unwrap()
}

#[test]
fn the_model_beats_every_baseline_on_every_task_and_is_accepted() {
    let r = report();
    println!("{r}");
    println!(
        "{} topics over {} tags",
        trained().artifact.topics.count,
        trained().artifact.topics.of_tag.len()
    );
    let model = r.row(MODEL).unwrap();
    for t in Task::ALL {
        let m = model.auc[t.index()].unwrap();
        for b in BASELINES {
            let base = r.row(b).unwrap().auc[t.index()].unwrap();
            assert!(
                m > base,
                "{}: model AUC {m:.3} vs {b} {base:.3}",
                t.as_str()
            );
        }
    }
    assert!(trained().artifact.accepted);
    // Random is random.
    let random = r.row("random").unwrap();
    assert!((random.auc[0].unwrap() - 0.5).abs() < 0.03);
}

#[test]
fn the_ceiling_is_above_the_model_and_the_model_is_calibrated() {
    let r = report();
    let (model, ceiling) = (r.row(MODEL).unwrap(), r.row(CEILING).unwrap());
    let like = Task::Like.index();
    assert!(ceiling.auc[like].unwrap() >= model.auc[like].unwrap() - 0.01);
    // Better than predicting the base rate, which a miscalibrated model would not be.
    for t in Task::ALL {
        let nce = model.nce[t.index()].unwrap();
        assert!(nce < 1.0, "{} NCE {nce:.3}", t.as_str());
    }
    assert!(ceiling.ndcg_at_10.unwrap() >= model.ndcg_at_10.unwrap() - 0.02);
}

#[test]
fn training_reads_only_days_before_the_held_out_one() {
    let t = trained();
    let split = eval::split(&t.data, 1);
    let a = &t.artifact;
    assert!(a.train.to_ms < split.at_ms);
    assert_eq!(a.train.impressions, split.train.len());
    assert_eq!(a.eval.unwrap().impressions, split.eval.len());
    assert!(a.eval.unwrap().from_ms >= a.train.to_ms);
    // Every held-out impression has its truth (the ceiling covers them all).
    let truth = truth_of(&t.workload);
    assert!(split.eval.iter().all(|i| truth.contains_key(&i.event_id)));
}

#[test]
fn an_artifact_reloads_to_the_same_predictions_and_the_newest_accepted_wins() {
    let t = trained();
    let dir = tempfile::tempdir().unwrap();
    let path = t.artifact.save(dir.path()).unwrap();
    let back = Artifact::load(&path).unwrap();
    for i in t.data.impressions.iter().step_by(997) {
        assert_eq!(back.predict(&i.inputs), t.artifact.predict(&i.inputs));
    }
    // An older accepted one and a newer rejected one: serving takes the newer accepted.
    let mut older = t.artifact.clone();
    older.version = "rank-0000000000001-00000000".into();
    older.save(dir.path()).unwrap();
    let mut rejected = t.artifact.clone();
    rejected.version = "rank-9999999999999-00000000".into();
    rejected.accepted = false;
    rejected.save(dir.path()).unwrap();
    std::fs::write(dir.path().join("rank-9999999999999-1.json"), "{ not json").unwrap();
    let (got, a) = newest_accepted(dir.path()).unwrap().unwrap();
    assert_eq!(got, path);
    assert_eq!(a.version, t.artifact.version);
    // A model of other features is refused, with the reason.
    let mut other = t.artifact.clone();
    other.features.swap(0, 1);
    let odd = dir.path().join("odd.json");
    std::fs::write(&odd, serde_json::to_string(&other).unwrap()).unwrap();
    let err = Artifact::load(&odd).unwrap_err().to_string();
    assert!(err.contains("features"), "{err}");
    assert!(
        newest_accepted(&dir.path().join("missing"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_final_score_adds_positive_tasks_and_subtracts_negative_feedback() {
    let w = Config::load(None).unwrap().ranking.weights;
    let p = Probabilities {
        like: 0.5,
        comment: 0.1,
        share: 0.0,
        save: 0.0,
        negative: 0.0,
        watch_ms: Some(10_000.0),
    };
    let base = model::score(&p, &w);
    assert!((base - (0.5 * w.like + 0.1 * w.comment + 10.0 * w.watch_per_second)).abs() < 1e-12);
    let hidden = model::score(&Probabilities { negative: 0.1, ..p }, &w);
    assert!((base - hidden - 0.1 * w.negative).abs() < 1e-12);
}

#[test]
fn a_task_the_log_never_shows_trains_to_a_constant_that_orders_nothing() {
    // A fifth of the log is plenty to show it, at a fifth of a fit.
    let mut impressions: Vec<_> = trained()
        .data
        .impressions
        .iter()
        .step_by(5)
        .cloned()
        .collect();
    for i in &mut impressions {
        i.labels[Task::Share.index()] = false;
    }
    let refs: Vec<_> = impressions.iter().collect();
    let artifact = model::fit(&refs).expect("a log without shares still trains");
    let shares: Vec<f64> = impressions
        .iter()
        .take(200)
        .map(|i| artifact.predict(&i.inputs).get(Task::Share))
        .collect();
    let expected = 0.5 / (impressions.len() as f64 + 1.0);
    for s in &shares {
        assert!((s - shares[0]).abs() < 1e-12, "share predictions differ");
    }
    assert!(
        (shares[0] - expected).abs() < 1e-6,
        "share predicts {} where the smoothed rate is {expected}",
        shares[0]
    );
    let likes: Vec<f64> = impressions
        .iter()
        .take(200)
        .map(|i| artifact.predict(&i.inputs).get(Task::Like))
        .collect();
    assert!(
        likes.iter().any(|l| (l - likes[0]).abs() > 1e-6),
        "the other tasks still learn"
    );
}
