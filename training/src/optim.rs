//! AdamW (decoupled weight decay, Loshchilov & Hutter) with saveable state, and the learning
//! rate schedule (linear warmup then cosine decay).
//!
//! candle's own `AdamW` keeps its moment estimates private; this one exposes them so a
//! checkpoint can store them and `--resume` continue the same run.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Result, Tensor, Var, backprop::GradStore};
use candle_nn::VarMap;

/// AdamW hyper-parameters (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// AdamW over the variables of a [`VarMap`], by name.
pub struct AdamW {
    pub params: AdamWParams,
    /// Variables, sorted by name.
    vars: Vec<(String, Var)>,
    /// First moment estimates, same order as `vars`.
    m: Vec<Tensor>,
    /// Second moment estimates.
    v: Vec<Tensor>,
    /// Number of updates done (the bias correction uses it).
    pub t: u64,
    /// Learning-rate factor of each variable, same order as `vars` (1 unless
    /// [`AdamW::set_lr_scale`]); 0 leaves the variable as it is.
    scale: Vec<f64>,
}

impl AdamW {
    /// Optimizer over all variables of `varmap`, moments zero.
    pub fn new(varmap: &VarMap, params: AdamWParams) -> Result<Self> {
        let data = varmap.data().lock().expect("varmap lock");
        let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, v)| v.zeros_like()).collect::<Result<Vec<_>>>()?;
        let v = vars.iter().map(|(_, v)| v.zeros_like()).collect::<Result<Vec<_>>>()?;
        let scale = vec![1.0; vars.len()];
        Ok(Self { params, vars, m, v, t: 0, scale })
    }

    /// Sets each variable's learning-rate factor from its name.
    pub fn set_lr_scale(&mut self, scale: impl Fn(&str) -> f64) {
        self.scale = self.vars.iter().map(|(name, _)| scale(name)).collect();
    }

    /// One update with learning rate `lr` from the gradients in `grads`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let p = self.params;
        let bc1 = 1.0 - p.beta1.powi(self.t as i32);
        let bc2 = 1.0 - p.beta2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let lr = lr * self.scale[i];
            if lr == 0.0 {
                continue;
            }
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let m = ((&self.m[i] * p.beta1)? + (g * (1.0 - p.beta1))?)?;
            let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let m_hat = (&m / bc1)?;
            let v_hat = (&v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * p.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moment tensors by name: `m.<var>` and `v.<var>`.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Writes the moments to a safetensors file (the step count `t` goes to the JSON state).
    pub fn save(&self, path: &Path) -> Result<()> {
        candle_core::safetensors::save(&self.state_tensors(), path)
    }

    /// Restores moments written by [`AdamW::save`] and sets the update count to `t`.
    pub fn load(&mut self, path: &Path, t: u64, device: &Device) -> Result<()> {
        let mut ts = candle_core::safetensors::load(path, device)?;
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let t = ts
                    .remove(&key)
                    .ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks {key}")))?;
                if t.dims() != var.dims() {
                    candle_core::bail!("optimizer state {key}: shape {:?}, expected {:?}", t.dims(), var.dims());
                }
                *slot = t;
            }
        }
        self.t = t;
        Ok(())
    }
}

/// Learning rate schedule: linear warmup from 0 to `peak` over `warmup` steps, then cosine
/// decay to `peak * final_fraction` at step `total`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: u64,
    pub total: u64,
    pub final_fraction: f64,
    /// Steps after which the rate ramps up again over `warmup` steps (lengthening resumes).
    pub rewarm_at: Vec<u64>,
}

impl Schedule {
    /// Learning rate for (1-based) step `step`.
    pub fn lr(&self, step: u64) -> f64 {
        let base = self.cosine(step);
        match self.rewarm_at.iter().filter(|&&r| r < step).max() {
            Some(&r) if self.warmup > 0 && step - r < self.warmup => base * (step - r) as f64 / self.warmup as f64,
            _ => base,
        }
    }

    fn cosine(&self, step: u64) -> f64 {
        if self.warmup > 0 && step <= self.warmup {
            return self.peak * step as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step.saturating_sub(self.warmup)) as f64 / span).clamp(0.0, 1.0);
        let min = self.peak * self.final_fraction;
        min + (self.peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarBuilder;

    #[test]
    fn schedule_shape() {
        let s = Schedule { peak: 1e-3, warmup: 10, total: 110, final_fraction: 0.1, rewarm_at: vec![] };
        assert!((s.lr(5) - 5e-4).abs() < 1e-12);
        assert!((s.lr(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr(60) - 5.5e-4).abs() < 1e-9);
        assert!((s.lr(110) - 1e-4).abs() < 1e-12);
        assert!((s.lr(500) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn rewarm_ramps_after_a_lengthening_resume() {
        let plain = Schedule { peak: 1e-3, warmup: 10, total: 210, final_fraction: 0.1, rewarm_at: vec![] };
        let s = Schedule { rewarm_at: vec![110], ..plain.clone() };
        assert_eq!(s.lr(110), plain.lr(110));
        assert!((s.lr(111) - plain.lr(111) * 0.1).abs() < 1e-15);
        assert!((s.lr(115) - plain.lr(115) * 0.5).abs() < 1e-15);
        assert_eq!(s.lr(120), plain.lr(120));
        assert_eq!(s.lr(5), plain.lr(5));
    }

    #[test]
    fn adamw_matches_formula() -> Result<()> {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let w = vb.get_with_hints(2, "w", candle_nn::Init::Const(1.0))?;
        let mut opt = AdamW::new(&vm, AdamWParams { weight_decay: 0.1, ..Default::default() })?;
        // loss = sum(w * [1, -2]) → grad = [1, -2]; the first Adam step moves by lr * sign.
        let loss = (w.clone() * Tensor::new(&[1f32, -2.0], &dev)?)?.sum_all()?;
        opt.step(&loss.backward()?, 0.1)?;
        let got = vm.data().lock().unwrap()["w"].as_tensor().to_vec1::<f32>()?;
        // decay: 1 * (1 - 0.1*0.1) = 0.99; update ±0.1
        assert!((got[0] - 0.89).abs() < 1e-5, "{got:?}");
        assert!((got[1] - 1.09).abs() < 1e-5, "{got:?}");
        assert_eq!(opt.t, 1);
        Ok(())
    }

    #[test]
    fn lr_scale_slows_or_freezes_variables_by_name() -> Result<()> {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let names = ["frozen", "half", "full"];
        let ws: Vec<Tensor> = names.iter().map(|n| vb.get_with_hints(1, n, candle_nn::Init::Const(1.0))).collect::<Result<_>>()?;
        let mut opt = AdamW::new(&vm, AdamWParams { weight_decay: 0.1, ..Default::default() })?;
        opt.set_lr_scale(|n| match n {
            "frozen" => 0.0,
            "half" => 0.5,
            _ => 1.0,
        });
        let loss = ws.iter().try_fold(Tensor::new(0f32, &dev)?, |acc, w| acc + w.sum_all()?)?;
        opt.step(&loss.backward()?, 0.1)?;
        let got: Vec<f32> = names.iter().map(|n| vm.data().lock().unwrap()[*n].as_tensor().to_vec1::<f32>().unwrap()[0]).collect();
        // Frozen: neither decay nor update. Half: 1·(1 − 0.05·0.1) − 0.05. Full: 0.99 − 0.1.
        assert_eq!(got[0], 1.0);
        assert!((got[1] - 0.945).abs() < 1e-5, "{got:?}");
        assert!((got[2] - 0.89).abs() < 1e-5, "{got:?}");
        Ok(())
    }
}
