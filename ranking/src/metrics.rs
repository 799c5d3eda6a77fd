//! Offline metrics: AUC and normalised cross-entropy per task, NDCG@k and recall@k per viewer.

/// Area under the ROC curve of `scores` for `labels`: the chance that a random positive
/// scores above a random negative, ties counting half. `None` without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Sum of the positives' ranks (1-based), ties given their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += average;
            }
        }
        i = j + 1;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Normalised cross-entropy (He et al., "Practical lessons from predicting clicks on ads at
/// Facebook"): the log loss of `probabilities` divided by the log loss of always predicting
/// the labels' base rate. 1 is no better than the base rate; lower is better. `None` without
/// both classes.
pub fn normalised_cross_entropy(probabilities: &[f64], labels: &[bool]) -> Option<f64> {
    let n = labels.len() as f64;
    let rate = labels.iter().filter(|&&l| l).count() as f64 / n;
    if rate <= 0.0 || rate >= 1.0 {
        return None;
    }
    let loss = |p: f64, y: bool| {
        let p = p.clamp(1e-7, 1.0 - 1e-7);
        if y { -p.ln() } else { -(1.0 - p).ln() }
    };
    let model: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &y)| loss(p, y))
        .sum::<f64>()
        / n;
    let base = -(rate * rate.ln() + (1.0 - rate) * (1.0 - rate).ln());
    Some(model / base)
}

/// NDCG@k of one list: `gains` in the order the scores put them (best first), against the
/// same gains sorted. `None` when no item has a gain.
pub fn ndcg_at(ranked_gains: &[f64], k: usize) -> Option<f64> {
    let dcg = |gains: &[f64]| -> f64 {
        gains
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, g)| g / (i as f64 + 2.0).log2())
            .sum()
    };
    let mut ideal = ranked_gains.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let best = dcg(&ideal);
    (best > 0.0).then(|| dcg(ranked_gains) / best)
}

/// Recall@k of one list: the share of items with a gain that are in the first `k`. `None` when
/// no item has a gain.
pub fn recall_at(ranked_gains: &[f64], k: usize) -> Option<f64> {
    let relevant = ranked_gains.iter().filter(|&&g| g > 0.0).count();
    let found = ranked_gains.iter().take(k).filter(|&&g| g > 0.0).count();
    (relevant > 0).then(|| found as f64 / relevant as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_one_for_a_perfect_order_half_for_ties_and_zero_reversed() {
        let labels = [false, false, true, true];
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(auc(&[0.5; 4], &labels), Some(0.5));
        assert_eq!(auc(&[0.1, 0.9, 0.5, 0.8], &labels), Some(0.5));
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn nce_is_one_for_the_base_rate_and_below_for_information() {
        let labels = [true, false, false, false];
        let base = normalised_cross_entropy(&[0.25; 4], &labels).unwrap();
        assert!((base - 1.0).abs() < 1e-12);
        let good = normalised_cross_entropy(&[0.9, 0.05, 0.05, 0.05], &labels).unwrap();
        assert!(good < 0.3, "{good}");
        let bad = normalised_cross_entropy(&[0.05, 0.9, 0.9, 0.9], &labels).unwrap();
        assert!(bad > 1.0, "{bad}");
    }

    #[test]
    fn ndcg_and_recall_reward_gains_early() {
        assert_eq!(ndcg_at(&[3.0, 1.0, 0.0], 10), Some(1.0));
        let swapped = ndcg_at(&[0.0, 1.0, 3.0], 10).unwrap();
        assert!(swapped < 0.7, "{swapped}");
        assert_eq!(ndcg_at(&[0.0, 0.0], 10), None);
        assert_eq!(recall_at(&[1.0, 0.0, 1.0, 1.0], 2), Some(1.0 / 3.0));
        assert_eq!(recall_at(&[0.0], 2), None);
    }
}
