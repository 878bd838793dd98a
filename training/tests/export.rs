//! The ONNX files compute what candle computes: random weights, export, run the files in
//! onnxruntime (through the `stego` runtime) at two sizes, compare.

use candle_core::{Device, Tensor};
use ndarray::Array4;
use stego::contract::{self, Role, meta};
use stego::{Model, RuntimeOptions};
use stego::Variant;
use training::nets::{self, Nets, VariantNets};
use training::onnx::{self, ExportInfo};

fn random_input(shape: (usize, usize, usize, usize), seed: u64) -> Array4<f32> {
    // Small LCG: values spread over [0, 1].
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Array4::from_shape_fn(shape, |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    })
}

fn to_tensor(a: &Array4<f32>) -> Tensor {
    let d = a.shape();
    Tensor::from_vec(a.iter().copied().collect::<Vec<f32>>(), (d[0], d[1], d[2], d[3]), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Array4<f32>, t: &Tensor) -> f32 {
    assert_eq!(a.shape(), t.dims());
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    a.iter().zip(&v).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn exported_models_match_candle() {
    check_export(Variant::Paper, nets::HideOutput::Sigmoid, "paper", false);
}

#[test]
fn exported_residual_models_match_candle() {
    check_export(Variant::Paper, nets::HideOutput::Residual, "paper-residual", false);
}

#[test]
fn exported_fast_models_match_candle() {
    check_export(Variant::Fast, nets::HideOutput::Residual, "fast", false);
}

/// The modular output in the graph: the same 8-bit containers, the same symbols read back.
#[test]
fn exported_modular_models_match_candle() {
    check_export(Variant::Fast, nets::HideOutput::Modular, "fast-modular", false);
}

/// The slim digit-code nets (the hide net reads the secret alone, a 1×1 reveal convolution).
#[test]
fn exported_slim_modular_models_match_candle() {
    check_export_with(Variant::Fast, nets::FastLayout { slim: true, ..Default::default() }, nets::HideOutput::Modular, "fast-modular", false);
}

/// The context branch (random weights everywhere, its last convolution included) in the graph.
#[test]
fn exported_context_models_match_candle() {
    check_export_with(Variant::Fast, nets::FastLayout { context: true, ..Default::default() }, nets::HideOutput::Residual, "fast", false);
}

/// The float16 export computes the same nets within float16 rounding.
#[test]
fn exported_fp16_models_match_candle() {
    check_export(Variant::Paper, nets::HideOutput::Residual, "paper-residual", true);
    check_export(Variant::Fast, nets::HideOutput::Residual, "fast", true);
}

fn check_export(arch: Variant, hide_output: nets::HideOutput, variant: &str, fp16: bool) {
    check_export_with(arch, nets::FastLayout::default(), hide_output, variant, fp16)
}

fn check_export_with(arch: Variant, layout: nets::FastLayout, hide_output: nets::HideOutput, variant: &str, fp16: bool) {
    let dev = Device::Cpu;
    let (varmap, _) = nets::init_nets_with(arch, layout, hide_output, &dev, 7).unwrap();
    if layout.context {
        // The branch starts at zero; give its last convolution weights so that it counts.
        let data = varmap.data().lock().unwrap();
        for (name, var) in data.iter().filter(|(n, _)| n.contains(".ctx.up.")) {
            var.set(&Tensor::rand(-0.05f32, 0.05f32, var.shape(), &dev).unwrap()).unwrap();
            assert!(name.ends_with("weight") || name.ends_with("bias"));
        }
    }
    let weights = nets::varmap_tensors(&varmap);
    assert_eq!(nets::layout_of_weights(&weights), layout);
    let modular = hide_output == nets::HideOutput::Modular;
    assert_eq!(nets::modular_of_weights(&weights), modular);
    assert_eq!(nets::parameter_count(&weights), arch.parameters(layout, modular));
    let candle_nets = Nets::inference_from_varmap(arch, &varmap, &dev).unwrap().with_hide_output(hide_output);

    let dir = tempfile::tempdir().unwrap();
    let info = ExportInfo { data: "random".into(), training: "steps=0".into(), metrics: "none".into(), hide_output, arch, layout, fp16, robust: false };
    let files = onnx::export(&weights, dir.path(), &info).unwrap();
    let name = |role| if fp16 { arch.fp16_file_name(role) } else { arch.file_name(role).to_string() };
    assert_eq!(files.hide, dir.path().join(name(Role::Hide)));
    assert_eq!(files.reveal, dir.path().join(name(Role::Reveal)));
    // float16 weights keep ~3 significant digits; through 5-7 layers the outputs in [0, 1]
    // stay within a few thousandths (about one 8-bit level at most).
    let tol = if fp16 { 4e-3 } else { 1e-4 };

    // Metadata as the contract asks.
    for (path, role) in [(&files.hide, Role::Hide), (&files.reveal, Role::Reveal)] {
        let m = onnx::read_model(path).unwrap();
        let md = onnx::metadata(&m);
        assert_eq!(md[meta::CONTRACT], contract::CONTRACT_VERSION);
        assert_eq!(md[meta::ROLE], role.as_str());
        assert_eq!(md[meta::VARIANT], variant);
        let (hm, rm) = arch.macs_per_pixel(layout, modular);
        assert_eq!(md[meta::MACS_PER_PIXEL].parse::<u64>().unwrap(), if role == Role::Hide { hm } else { rm });
        assert_eq!(md[meta::SIZE_MULTIPLE], arch.size_multiple(layout).to_string());
        assert_eq!(md[meta::PRECISION], if fp16 { "fp16" } else { "fp32" });
        for k in [meta::ARCHITECTURE, meta::DATA, meta::TRAINING, meta::METRICS] {
            assert!(md.contains_key(k), "{k} missing");
        }
        assert_eq!(m.opset_import[0].version, Some(onnx::OPSET));
    }

    let opts = RuntimeOptions::default();
    let mut hide = Model::load(&files.hide, Role::Hide, &opts).unwrap();
    let mut reveal = Model::load(&files.reveal, Role::Reveal, &opts).unwrap();
    // Sizes the model accepts (the fast nets need multiples of 4; the runtime pads frames).
    let sizes: &[(usize, usize)] = match (arch, layout.context) {
        (Variant::Paper, _) => &[(16, 16), (13, 21)],
        (_, false) => &[(16, 16), (12, 20)],
        (_, true) => &[(32, 32), (48, 80)],
    };
    for (k, &(h, w)) in sizes.iter().enumerate() {
        let cover = random_input((2, 3, h, w), 10 + k as u64);
        let secret = random_input((2, 3, h, w), 20 + k as u64);
        let container = hide.run(&[cover.view(), secret.view()]).unwrap();
        let expected = candle_nets.hide(&to_tensor(&cover), &to_tensor(&secret)).unwrap();
        let d = max_abs_diff(&container, &expected);
        assert!(d <= tol, "hide {h}x{w}: max abs diff {d}");

        let revealed = reveal.run(&[container.view()]).unwrap();
        let expected = candle_nets.reveal(&to_tensor(&container)).unwrap();
        let d = max_abs_diff(&revealed, &expected);
        assert!(d <= tol, "reveal {h}x{w}: max abs diff {d}");
    }
}

/// The linear test models compute their formulas exactly in onnxruntime, and the copies the
/// plugin tests use are the ones the exporter writes (regenerate them with
/// `cargo run -p training --example linear_models` after changing it).
#[test]
fn linear_test_models_are_exact_and_match_the_plugin_tests_copies() {
    let dir = tempfile::tempdir().unwrap();
    let files = onnx::write_linear_test_models(dir.path()).unwrap();
    let opts = RuntimeOptions::default();
    let mut hide = Model::load(&files.hide, Role::Hide, &opts).unwrap();
    let mut reveal = Model::load(&files.reveal, Role::Reveal, &opts).unwrap();
    let cover = random_input((2, 3, 5, 7), 1);
    let secret = random_input((2, 3, 5, 7), 2);
    let container = hide.run(&[cover.view(), secret.view()]).unwrap();
    let expected = cover.mapv(|c| 0.75 * c) + secret.mapv(|s| 0.25 * s);
    assert_eq!(container, expected);
    let revealed = reveal.run(&[container.view()]).unwrap();
    assert_eq!(revealed, container.mapv(|c| 1.0 - c));
    for (path, m) in [(&files.hide, "hide"), (&files.reveal, "reveal")] {
        let md = onnx::metadata(&onnx::read_model(path).unwrap());
        assert_eq!((md[meta::ROLE].as_str(), md[meta::VARIANT].as_str()), (m, onnx::TEST_STUB_VARIANT));
        let copy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/tests/models").join(format!("{m}.onnx"));
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(path).unwrap(), "{} is not the exporter's", copy.display());
    }
}
