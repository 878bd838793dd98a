//! `--init-from` a checkpoint of narrower fast nets, or of nets without a context branch: the grown
//! nets compute what the old ones did, whatever their new units start with. Slim nets from full
//! digit-code nets: the hide net computes what the full one did for a mid-grey cover.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use stego::Variant;
use training::nets::{self, FAST_WIDTH, Nets};
use training::train::load_weights_grown;

const OLD_WIDTH: usize = 64;

/// The weights of `varmap` cut down to `OLD_WIDTH` hidden channels.
fn narrowed(weights: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    weights
        .iter()
        .map(|(k, t)| {
            let mut t = t.clone();
            for d in 0..t.rank().min(2) {
                if t.dims()[d] == FAST_WIDTH {
                    t = t.narrow(d, 0, OLD_WIDTH).unwrap();
                }
            }
            (k.clone(), t.contiguous().unwrap())
        })
        .collect()
}

fn outputs(nets: &Nets, cover: &Tensor, secret: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let Nets::Fast(n) = nets else { panic!("fast nets expected") };
    let c = n.hide(cover, secret).unwrap();
    let r = n.reveal(&c).unwrap();
    (c.flatten_all().unwrap().to_vec1().unwrap(), r.flatten_all().unwrap().to_vec1().unwrap())
}

#[test]
fn widened_nets_keep_the_narrow_nets_function() {
    let dev = Device::Cpu;
    let (source, _) = nets::init_arch(Variant::Fast, nets::FastLayout::default(), &dev, 1).unwrap();
    let old = narrowed(&nets::varmap_tensors(&source));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("narrow.safetensors");
    candle_core::safetensors::save(&old, &path).unwrap();

    let cover = Tensor::rand(0f32, 1f32, (1, 3, 16, 24), &dev).unwrap();
    let secret = Tensor::rand(0f32, 1f32, (1, 3, 16, 24), &dev).unwrap();
    let mut results = Vec::new();
    for seed in [2, 3] {
        let (varmap, nets) = nets::init_arch(Variant::Fast, nets::FastLayout::default(), &dev, seed).unwrap();
        let grown = load_weights_grown(&varmap, &path, &dev).unwrap();
        assert!(grown.contains(&"hide.conv1.weight".to_string()) && grown.contains(&"reveal.out.weight".to_string()), "{grown:?}");
        let w = nets::varmap_tensors(&varmap);
        // The old block is the narrow checkpoint's.
        let c0 = w["reveal.conv0.weight"].narrow(0, 0, OLD_WIDTH).unwrap();
        let diff = (c0 - &old["reveal.conv0.weight"]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
        results.push((outputs(&nets, &cover, &secret), w["hide.conv1.weight"].to_dtype(DType::F32).unwrap()));
    }
    // Different new units ...
    let (a, b) = (&results[0].1, &results[1].1);
    let new_units = (a.narrow(0, OLD_WIDTH, FAST_WIDTH - OLD_WIDTH).unwrap() - b.narrow(0, OLD_WIDTH, FAST_WIDTH - OLD_WIDTH).unwrap()).unwrap();
    assert!(new_units.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    // ... the same function.
    for (x, y) in results[0].0.0.iter().zip(&results[1].0.0).chain(results[0].0.1.iter().zip(&results[1].0.1)) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

/// Nets given a context branch (`--context --init-from` a run without one) compute what the
/// nets without it did, and the branch's last convolution starts at zero.
#[test]
fn a_context_branch_starts_without_changing_the_nets() {
    let dev = Device::Cpu;
    let (source, plain) = nets::init_arch(Variant::Fast, nets::FastLayout::default(), &dev, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.safetensors");
    candle_core::safetensors::save(&nets::varmap_tensors(&source), &path).unwrap();
    let (varmap, with_context) = nets::init_arch(Variant::Fast, nets::FastLayout { context: true, ..Default::default() }, &dev, 2).unwrap();
    assert!(load_weights_grown(&varmap, &path, &dev).unwrap().is_empty());
    let w = nets::varmap_tensors(&varmap);
    assert!(nets::layout_of_weights(&w).context);
    assert_eq!(w["hide.ctx.up.weight"].abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    assert!(w["hide.ctx.mid.weight"].abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    let cover = Tensor::rand(0f32, 1f32, (1, 3, 32, 48), &dev).unwrap();
    let secret = Tensor::rand(0f32, 1f32, (1, 3, 32, 48), &dev).unwrap();
    let (a, b) = (outputs(&plain, &cover, &secret), outputs(&with_context, &cover, &secret));
    assert_eq!(a, b);
}

#[test]
fn a_checkpoint_of_other_shapes_is_refused_with_the_name() {
    let dev = Device::Cpu;
    let (source, _) = nets::init_arch(Variant::Fast, nets::FastLayout::default(), &dev, 1).unwrap();
    let mut w = nets::varmap_tensors(&source);
    w.insert("reveal.out.weight".into(), Tensor::zeros((48, FAST_WIDTH + 8, 1, 1), DType::F32, &dev).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.safetensors");
    candle_core::safetensors::save(&w, &path).unwrap();
    let (varmap, _) = nets::init_arch(Variant::Fast, nets::FastLayout::default(), &dev, 2).unwrap();
    let err = load_weights_grown(&varmap, &path, &dev).unwrap_err().to_string();
    assert!(err.contains("reveal.out.weight") && err.contains("only more channels"), "{err}");
}

/// `--slim --init-from` full digit-code nets: the slim hide net's code is the full one's for a
/// mid-grey cover, away from the frame's edge (the zero padding of the cover's half is gone), and
/// the reveal net's 1×1 convolution is the sum of the 3×3 one's taps.
#[test]
fn slim_nets_from_full_ones_keep_the_hide_net_for_a_grey_cover() {
    let dev = Device::Cpu;
    let modular = nets::HideOutput::Modular;
    let (source, full) = nets::init_nets_with(Variant::Fast, nets::FastLayout::default(), modular, &dev, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.safetensors");
    let old = nets::varmap_tensors(&source);
    candle_core::safetensors::save(&old, &path).unwrap();
    let slim_layout = nets::FastLayout { slim: true, ..Default::default() };
    let (varmap, slim) = nets::init_nets_with(Variant::Fast, slim_layout, modular, &dev, 2).unwrap();
    load_weights_grown(&varmap, &path, &dev).unwrap();
    let w = nets::varmap_tensors(&varmap);
    assert_eq!(nets::layout_of_weights(&w), slim_layout);
    let taps = old["reveal.conv1.weight"].sum_keepdim((2, 3)).unwrap();
    assert_eq!((&w["reveal.conv1.weight"] - taps).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);

    let (Nets::Fast(full), Nets::Fast(slim)) = (full, slim) else { panic!("fast nets expected") };
    let (h, wd) = (32, 40);
    let cover = Tensor::full(nets::SLIM_COVER as f32, (1, 3, h, wd), &dev).unwrap();
    let secret = Tensor::rand(0f32, 1f32, (1, 3, h, wd), &dev).unwrap();
    let (a, b) = (full.hide_cells(&cover, &secret).unwrap(), slim.hide_cells(&cover, &secret).unwrap());
    // Two 3x3 convolutions: cells two or more from the edge see no padding of the cover.
    let inner = |t: &Tensor| t.narrow(2, 2, h / 4 - 4).unwrap().narrow(3, 2, wd / 4 - 4).unwrap();
    let d = (inner(&a) - inner(&b)).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 1e-4, "max |Δ| {d}");
    let edge = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(edge > 1e-3, "the edge cells should differ (padding), max |Δ| {edge}");
}
