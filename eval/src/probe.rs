//! The linear probe (spec §8.3): multinomial logistic regression on standardised features,
//! with scikit-learn's `LogisticRegression` objective (L2, C = 1: `½|W|² + C Σ CE`, biases
//! not penalised), minimised full-batch with Adam in f64 until the objective stops moving,
//! and its top-1 accuracy on a held-out split.

use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor};

pub struct ProbeOptions {
    /// Inverse regularisation strength (scikit-learn's C).
    pub c: f64,
    pub max_iter: usize,
    pub lr: f64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            c: 1.0,
            max_iter: 3000,
            lr: 0.05,
        }
    }
}

/// Trained on (x_train, y_train), the held-out accuracy on (x_test, y_test); features are
/// standardised with the training split's statistics. As scikit-learn's `classes_`, only
/// the labels of the training split get a column (4 ImageNet classes train 4, not 1000); a
/// held-out label outside them counts as wrong.
pub fn linear_probe(
    x_train: &Tensor,
    y_train: &Tensor,
    x_test: &Tensor,
    y_test: &Tensor,
    o: &ProbeOptions,
) -> f64 {
    let cpu = |t: &Tensor| t.to_device(Device::Cpu).to_kind(Kind::Double);
    let (xtr, xte) = (cpu(x_train), cpu(x_test));
    let xte = crate::pca::standardise(&xte, &xtr);
    let xtr = crate::pca::standardise(&xtr, &xtr);
    let (labels, ytr, _) = y_train
        .to_device(Device::Cpu)
        .internal_unique2(true, true, false);
    let classes = labels.size()[0];
    // Held-out labels as column indices (-1: a class the training split lacks).
    let yte = y_test.to_device(Device::Cpu);
    let hit = yte.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
    let yte = hit
        .to_kind(Kind::Int64)
        .argmax(1, false)
        .where_self(&hit.any_dim(1, false), &yte.full_like(-1));
    let (n, d) = (xtr.size()[0], xtr.size()[1]);
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let w = vs.root().zeros("w", &[d, classes]);
    let b = vs.root().zeros("b", &[classes]);
    vs.double(); // in place: `w` and `b` stay the store's
    let mut opt = tch::nn::Adam::default().build(&vs, o.lr).expect("adam");
    let mut last = f64::INFINITY;
    for _ in 0..o.max_iter {
        let logits = xtr.matmul(&w) + &b;
        let ce = logits.cross_entropy_for_logits(&ytr) * n as f64; // the sum over samples
        let loss = (ce * o.c + w.square().sum(Kind::Double) * 0.5) / n as f64;
        opt.zero_grad();
        loss.backward();
        opt.step();
        let v = f64::try_from(&loss).unwrap_or(f64::NAN);
        if (last - v).abs() < 1e-10 * v.abs().max(1.0) {
            break;
        }
        last = v;
    }
    tch::no_grad(|| {
        let pred = (xte.matmul(&w) + &b).argmax(1, false);
        f64::try_from(
            pred.eq_tensor(&yte)
                .to_kind(Kind::Double)
                .mean(Kind::Double),
        )
        .unwrap_or(f64::NAN)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels 3 and 700 train two columns, as 0 and 1 do, to the same accuracy; a held-out
    /// row of a class the training rows lack counts as wrong.
    #[test]
    fn only_the_training_classes_get_columns() {
        tch::manual_seed(2);
        let o = ProbeOptions {
            max_iter: 300,
            ..Default::default()
        };
        let opts = (Kind::Double, Device::Cpu);
        let y = Tensor::arange(200, (Kind::Int64, Device::Cpu)).remainder(2);
        let x = Tensor::randn([200, 5], opts) + y.to_kind(Kind::Double).unsqueeze(1) * 3.0;
        let (xtr, xte) = (x.narrow(0, 0, 150), x.narrow(0, 150, 50));
        let dense = linear_probe(&xtr, &y.narrow(0, 0, 150), &xte, &y.narrow(0, 150, 50), &o);
        let sparse = &y * 697 + 3;
        let got = linear_probe(
            &xtr,
            &sparse.narrow(0, 0, 150),
            &xte,
            &sparse.narrow(0, 150, 50),
            &o,
        );
        assert!(dense > 0.9 && (dense - got).abs() < 1e-12, "{dense} {got}");
        let unseen = sparse.narrow(0, 150, 50).fill(5);
        assert_eq!(
            linear_probe(&xtr, &sparse.narrow(0, 0, 150), &xte, &unseen, &o),
            0.0
        );
    }
}
