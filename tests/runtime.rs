//! The library's results equal a direct onnxruntime session run on the same tensors.

mod common;
use ndarray::Array4;
use stego::contract::{self, Role};
use stego::frame::{Frame, FrameMut, PixelFormat, frame_to_planar, quantize};
use stego::runtime::{Model, RuntimeOptions, environment};
use common::model as model_file;

fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32) / (1u64 << 31) as f32
        })
        .collect()
}

/// The container of a plain onnxruntime session on the hiding model.
fn direct_hide(session: &mut ort::session::Session, cover: &Array4<f32>, secret: &Array4<f32>) -> ndarray::ArrayD<f32> {
    let outputs = session
        .run(ort::inputs![
            contract::HIDE_COVER => ort::value::TensorRef::from_array_view(cover.view()).unwrap(),
            contract::HIDE_SECRET => ort::value::TensorRef::from_array_view(secret.view()).unwrap(),
        ])
        .unwrap();
    outputs[contract::HIDE_CONTAINER].try_extract_array::<f32>().unwrap().to_owned()
}

#[test]
fn library_equals_direct_onnxruntime() {
    let opts = RuntimeOptions { threads: Some(2), ..Default::default() };
    let env = environment(&opts).unwrap();
    let (n, h, w) = (2, 19, 23);
    let cover = Array4::from_shape_vec((n, 3, h, w), pseudo_random(n * 3 * h * w, 1)).unwrap();
    let secret = Array4::from_shape_vec((n, 3, h, w), pseudo_random(n * 3 * h * w, 2)).unwrap();

    let mut direct = ort::session::Session::builder(&env).unwrap().commit_from_file(model_file("hide.onnx")).unwrap();
    let expected = direct_hide(&mut direct, &cover, &secret);

    let mut model = Model::load(&model_file("hide.onnx"), Role::Hide, &opts).unwrap();
    let got = model.run(&[cover.view(), secret.view()]).unwrap();
    let max = got.iter().zip(expected.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max <= 1e-6, "max abs diff {max}");
    // Twice with the reused buffers, then another shape.
    let again = model.run(&[cover.view(), secret.view()]).unwrap();
    assert_eq!(again, got);
    // New data in the reused buffers is what the next run sees (the inputs are bound again
    // before every run; a CUDA session would otherwise keep the first copy).
    let swapped = model.run(&[secret.view(), cover.view()]).unwrap();
    let expected_swapped = direct_hide(&mut direct, &secret, &cover);
    let max = swapped.iter().zip(expected_swapped.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max <= 1e-6 && swapped != got, "max abs diff {max} after new inputs in the reused buffers");

    // The frame path (BGRx with padding in the stride) equals the session on the converted tensors.
    let mut hider = stego::Hider::new(&model_file("hide.onnx"), &opts).unwrap();
    let stride = w * 4 + 12;
    let to_bgrx = |t: &[f32]| {
        let mut d = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                for (c, off) in [(0, 2), (1, 1), (2, 0)] {
                    d[y * stride + x * 4 + off] = quantize(t[(c * h + y) * w + x]);
                }
            }
        }
        d
    };
    let plane = 3 * h * w;
    let cb = to_bgrx(&cover.as_slice().unwrap()[..plane]);
    let sb = to_bgrx(&secret.as_slice().unwrap()[..plane]);
    let cf = Frame::new(&cb, PixelFormat::Bgrx, w, h, stride).unwrap();
    let sf = Frame::new(&sb, PixelFormat::Bgrx, w, h, stride).unwrap();
    let mut out = vec![0u8; stride * h];
    hider.hide(&cf, &sf, &mut FrameMut::new(&mut out, PixelFormat::Bgrx, w, h, stride).unwrap()).unwrap();
    let (mut ct, mut st) = (vec![0f32; plane], vec![0f32; plane]);
    frame_to_planar(&cf, &mut ct).unwrap();
    frame_to_planar(&sf, &mut st).unwrap();
    let a = Array4::from_shape_vec((1, 3, h, w), ct).unwrap();
    let b = Array4::from_shape_vec((1, 3, h, w), st).unwrap();
    let e = direct_hide(&mut direct, &a, &b);
    for y in 0..h {
        for x in 0..w {
            for (c, off) in [(0, 2), (1, 1), (2, 0)] {
                assert_eq!(out[y * stride + x * 4 + off], quantize(e[[0, c, y, x]]), "pixel {x},{y} channel {c}");
            }
            assert_eq!(out[y * stride + x * 4 + 3], 255);
        }
    }
}

#[test]
fn reveal_model_runs_at_odd_sizes_and_batches() {
    let opts = RuntimeOptions::default();
    let mut m = Model::load(&model_file("reveal.onnx"), Role::Reveal, &opts).unwrap();
    for (n, h, w) in [(1, 1, 1), (3, 7, 5), (1, 33, 17)] {
        let x = Array4::from_shape_vec((n, 3, h, w), pseudo_random(n * 3 * h * w, 7)).unwrap();
        let y = m.run(&[x.view()]).unwrap();
        assert_eq!(y.shape(), &[n, 3, h, w]);
        assert!(y.iter().all(|v| (0.0..=1.0).contains(v)), "outputs leave [0,1]");
    }
    // Wrong number of inputs is an error, not a panic.
    let x = Array4::<f32>::zeros((1, 3, 4, 4));
    assert!(m.run(&[x.view(), x.view()]).is_err());
}

#[test]
fn shipped_float16_models_match_float32() {
    // Every shipped variant has float16 exports for GPUs that load as their role, say so in
    // their metadata, and give the float32 models' outputs to within float16 rounding (measured
    // mean |Δ|: 0.5e-5 to 8e-5 on this input).
    let opts = RuntimeOptions { threads: Some(2), ..Default::default() };
    let (h, w) = (32, 48);
    for variant in contract::Variant::ALL {
        for role in [Role::Hide, Role::Reveal] {
            let mut f32m = Model::load(&model_file(variant.file_name(role)), role, &opts).unwrap();
            let mut f16m = Model::load(&model_file(&variant.fp16_file_name(role)), role, &opts).unwrap();
            assert_eq!(f16m.info().metadata.get(contract::meta::PRECISION).map(String::as_str), Some("fp16"), "{variant} {role}");
            let inputs: Vec<Array4<f32>> = (0..role.inputs().len() as u64)
                .map(|i| Array4::from_shape_vec((1, 3, h, w), pseudo_random(3 * h * w, 7 + i)).unwrap())
                .collect();
            let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
            let (a, b) = (f32m.run(&views).unwrap(), f16m.run(&views).unwrap());
            let mean = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
            assert!(mean < 5e-4, "{variant} {role}: float16 differs from float32 by {mean} on average");
        }
    }
}
