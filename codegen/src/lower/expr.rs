//! Expression lowering: each [`Expr`] of a loop body to CLIF, on scalars or on
//! `f32x4` lanes (comparison masks as `i32x4`). f32 transcendentals use the
//! emitted approximations of [`super::approx`]; f64 ones and `pow` call the
//! library's scalar routines.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use cranelift_module::Module;
use kiln_ir::kernel::{Expr, ExprId, ExprNode};
use kiln_ir::{BinaryOp, CmpOp, DType, IntUnaryOp, UnaryOp};

use super::approx;
use super::loops::LoopEmitter;
use super::scalar_type;

/// True if `list` evaluates on `f32x4` lanes along loop `last`: f32 values (and
/// their comparison masks), loads contiguous or invariant along that loop.
pub(super) fn exprs_vectorizable(list: &[ExprNode], last: usize) -> bool {
    list.iter().all(|e| {
        let f32_or_mask = e.dtype == DType::F32 || e.dtype == DType::Bool;
        f32_or_mask
            && match &e.expr {
                Expr::Load(a) => e.dtype == DType::F32 && a.strides[last] <= 1,
                Expr::Const(_) | Expr::Select(..) | Expr::Fma(..) | Expr::Row(_) => true,
                Expr::Compare(_, a, _) => list[a.index()].dtype == DType::F32,
                Expr::Unary(u, _) => unary_on_lanes(*u),
                Expr::Binary(b, _, _) => binary_on_lanes(*b),
                Expr::Cast(_) | Expr::Random { .. } => false,
            }
    })
}

/// True if the lowering of `k` has an `f32x4` form (`sign` selects on scalar
/// flags only).
fn unary_on_lanes(k: UnaryOp) -> bool {
    match k {
        UnaryOp::Sign => false,
        UnaryOp::Neg
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Sqrt
        | UnaryOp::Rsqrt
        | UnaryOp::Tanh
        | UnaryOp::Erf
        | UnaryOp::Sigmoid
        | UnaryOp::Relu
        | UnaryOp::Abs
        | UnaryOp::Recip
        | UnaryOp::LeakyRelu(_) => true,
    }
}

/// True if the lowering of `k` has an `f32x4` form (`pow` calls libm per element).
fn binary_on_lanes(k: BinaryOp) -> bool {
    match k {
        BinaryOp::Pow => false,
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Max
        | BinaryOp::Min => true,
    }
}

impl LoopEmitter<'_, '_> {
    pub(super) fn constant(&mut self, dtype: DType, v: f64, lanes: usize) -> Value {
        let s = match dtype {
            DType::F32 => self.b.ins().f32const(v as f32),
            DType::F64 => self.b.ins().f64const(v),
            DType::I32 => self.b.ins().iconst(types::I32, v as i32 as i64),
            DType::Bool => self.b.ins().iconst(types::I8, (v != 0.0) as i64),
        };
        if lanes == 4 {
            let vt = if dtype == DType::Bool {
                types::I32X4
            } else {
                types::F32X4
            };
            let s = if dtype == DType::Bool {
                self.b.ins().iconst(types::I32, -((v != 0.0) as i64))
            } else {
                s
            };
            return self.b.ins().splat(vt, s);
        }
        s
    }

    /// Calls the f64 libm routine `name`.
    fn call_f64(&mut self, name: &'static str, x: Value) -> Value {
        let f = self
            .module
            .declare_func_in_func(self.imports.unary[name], self.b.func);
        let inst = self.b.ins().call(f, &[x]);
        self.b.inst_results(inst)[0]
    }

    /// Evaluates the kernel's value at the loop indices `idx` on `lanes` lanes.
    pub(super) fn body(&mut self, idx: &[Value], lanes: usize) -> Value {
        let k = self.kernel;
        self.eval(&k.exprs, k.value, idx, lanes)
    }

    /// Evaluates expression `value` of `list` at the loop indices `idx`.
    pub(super) fn eval(
        &mut self,
        list: &[ExprNode],
        value: ExprId,
        idx: &[Value],
        lanes: usize,
    ) -> Value {
        self.eval_all(list, idx, lanes)[value.index()]
    }

    /// Evaluates every expression of `list` at the loop indices `idx`.
    pub(super) fn eval_all(
        &mut self,
        list: &[ExprNode],
        idx: &[Value],
        lanes: usize,
    ) -> Vec<Value> {
        let mut vals: Vec<Value> = Vec::with_capacity(list.len());
        for e in list {
            let v = self.expr(list, &e.expr, e.dtype, &vals, idx, lanes);
            vals.push(v);
        }
        vals
    }

    fn expr(
        &mut self,
        exprs: &[ExprNode],
        expr: &Expr,
        dtype: DType,
        vals: &[Value],
        idx: &[Value],
        lanes: usize,
    ) -> Value {
        let float = dtype.is_float();
        match expr {
            Expr::Load(a) => {
                let addr = self.address(a, idx);
                if lanes == 4 && a.strides[self.lane_axis] == 1 {
                    self.b.ins().load(types::F32X4, self.flags, addr, 0)
                } else if lanes == 4 {
                    let s = self.b.ins().load(types::F32, self.flags, addr, 0);
                    self.b.ins().splat(types::F32X4, s)
                } else {
                    self.b.ins().load(scalar_type(dtype), self.flags, addr, 0)
                }
            }
            Expr::Const(v) => self.constant(dtype, *v, lanes),
            Expr::Unary(k, x) => self.unary(*k, dtype, vals[x.index()], lanes),
            Expr::Binary(k, a, b) => {
                let (a, b) = (vals[a.index()], vals[b.index()]);
                let ins = self.b.ins();
                match (k, float) {
                    (BinaryOp::Add, true) => ins.fadd(a, b),
                    (BinaryOp::Sub, true) => ins.fsub(a, b),
                    (BinaryOp::Mul, true) => ins.fmul(a, b),
                    (BinaryOp::Div, true) => ins.fdiv(a, b),
                    (BinaryOp::Max, true) => ins.fmax(a, b),
                    (BinaryOp::Min, true) => ins.fmin(a, b),
                    (BinaryOp::Pow, _) => {
                        let f = self
                            .module
                            .declare_func_in_func(self.imports.pow[&dtype], self.b.func);
                        let inst = self.b.ins().call(f, &[a, b]);
                        self.b.inst_results(inst)[0]
                    }
                    (BinaryOp::Add, false) => ins.iadd(a, b),
                    (BinaryOp::Sub, false) => ins.isub(a, b),
                    (BinaryOp::Mul, false) => ins.imul(a, b),
                    (BinaryOp::Max, false) => ins.smax(a, b),
                    (BinaryOp::Min, false) => ins.smin(a, b),
                    (BinaryOp::Div, false) => self.int_div(a, b),
                }
            }
            Expr::Compare(k, a, b) => {
                let operand = exprs[a.index()].dtype;
                let (a, b) = (vals[a.index()], vals[b.index()]);
                if operand.is_float() {
                    let cc = match k {
                        CmpOp::Eq => FloatCC::Equal,
                        CmpOp::Ne => FloatCC::NotEqual,
                        CmpOp::Lt => FloatCC::LessThan,
                        CmpOp::Le => FloatCC::LessThanOrEqual,
                        CmpOp::Gt => FloatCC::GreaterThan,
                        CmpOp::Ge => FloatCC::GreaterThanOrEqual,
                    };
                    self.b.ins().fcmp(cc, a, b)
                } else {
                    let cc = match k {
                        CmpOp::Eq => IntCC::Equal,
                        CmpOp::Ne => IntCC::NotEqual,
                        CmpOp::Lt => IntCC::SignedLessThan,
                        CmpOp::Le => IntCC::SignedLessThanOrEqual,
                        CmpOp::Gt => IntCC::SignedGreaterThan,
                        CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
                    };
                    self.b.ins().icmp(cc, a, b)
                }
            }
            Expr::Select(c, a, b) => {
                let (c, a, b) = (vals[c.index()], vals[a.index()], vals[b.index()]);
                if lanes == 4 {
                    let mask = self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), c);
                    self.b.ins().bitselect(mask, a, b)
                } else {
                    self.b.ins().select(c, a, b)
                }
            }
            Expr::Fma(a, b, c) => {
                let (a, b, c) = (vals[a.index()], vals[b.index()], vals[c.index()]);
                self.b.ins().fma(a, b, c)
            }
            Expr::Row(r) => {
                let v = self.rows[*r];
                if lanes == 4 {
                    self.b.ins().splat(types::F32X4, v)
                } else {
                    v
                }
            }
            Expr::Cast(x) => self.cast(vals[x.index()], exprs[x.index()].dtype, dtype),
            Expr::Random { seed, salt, flat } => {
                let seed_addr = self.address(seed, idx);
                let seed = self.b.ins().load(types::I32, self.flags, seed_addr, 0);
                let k0 = fmix32(salt.wrapping_add(0x9e37_79b9));
                let s = self.b.ins().bxor_imm_u(seed, k0 as i64);
                let key = self.fmix32(s);
                let i = self.affine(flat, idx);
                let i = self.b.ins().ireduce(types::I32, i);
                let i = self.b.ins().imul_imm_u(i, 0x9e37_79b9u32 as i64);
                let h = self.b.ins().bxor(i, key);
                let bits = self.fmix32(h);
                let top = self.b.ins().ushr_imm_u(bits, 8);
                let f = self.b.ins().fcvt_from_uint(types::F32, top);
                let scale = self.b.ins().f32const(1.0 / (1u32 << 24) as f32);
                let u = self.b.ins().fmul(f, scale);
                if dtype == DType::F64 {
                    self.b.ins().fpromote(types::F64, u)
                } else {
                    u
                }
            }
        }
    }

    fn fmix32(&mut self, h: Value) -> Value {
        let t = self.b.ins().ushr_imm_u(h, 16);
        let h = self.b.ins().bxor(h, t);
        let h = self.b.ins().imul_imm_u(h, 0x85eb_ca6bu32 as i64);
        let t = self.b.ins().ushr_imm_u(h, 13);
        let h = self.b.ins().bxor(h, t);
        let h = self.b.ins().imul_imm_u(h, 0xc2b2_ae35u32 as i64);
        let t = self.b.ins().ushr_imm_u(h, 16);
        self.b.ins().bxor(h, t)
    }

    /// Truncating i32 division that never traps: x/0 is 0 (the interpreter reports an
    /// error there; graphs with i32 division are rare) and MIN/-1 wraps to MIN.
    fn int_div(&mut self, a: Value, b: Value) -> Value {
        let zero = self.b.ins().iconst(types::I32, 0);
        let one = self.b.ins().iconst(types::I32, 1);
        let is_zero = self.b.ins().icmp(IntCC::Equal, b, zero);
        let minus_one = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
        let safe_b = self.b.ins().select(is_zero, one, b);
        let safe_b = self.b.ins().select(minus_one, one, safe_b);
        let q = self.b.ins().sdiv(a, safe_b);
        let neg = self.b.ins().ineg(a);
        let q = self.b.ins().select(minus_one, neg, q);
        self.b.ins().select(is_zero, zero, q)
    }

    fn unary(&mut self, k: UnaryOp, dtype: DType, x: Value, lanes: usize) -> Value {
        let one = |e: &mut Self| e.constant(dtype, 1.0, lanes);
        let zero = |e: &mut Self| e.constant(dtype, 0.0, lanes);
        if !dtype.is_float() {
            let z = zero(self);
            let Some(int) = k.on_integers() else {
                unreachable!("typing allows only neg, abs, relu, sign on integers")
            };
            return match int {
                IntUnaryOp::Neg => self.b.ins().ineg(x),
                IntUnaryOp::Abs => self.b.ins().iabs(x),
                IntUnaryOp::Relu => self.b.ins().smax(x, z),
                IntUnaryOp::Sign => {
                    let pos = self.b.ins().icmp(IntCC::SignedGreaterThan, x, z);
                    let neg = self.b.ins().icmp(IntCC::SignedLessThan, x, z);
                    let p = self.b.ins().uextend(types::I32, pos);
                    let n = self.b.ins().uextend(types::I32, neg);
                    self.b.ins().isub(p, n)
                }
            };
        }
        let gt0 = |e: &mut Self, x: Value| {
            let z = zero(e);
            let m = e.b.ins().fcmp(FloatCC::GreaterThan, x, z);
            if lanes == 4 {
                e.b.ins().bitcast(types::F32X4, MemFlagsData::new(), m)
            } else {
                m
            }
        };
        let pick = |e: &mut Self, m: Value, a: Value, b: Value| {
            if lanes == 4 {
                e.b.ins().bitselect(m, a, b)
            } else {
                e.b.ins().select(m, a, b)
            }
        };
        match k {
            UnaryOp::Neg => self.b.ins().fneg(x),
            UnaryOp::Abs => self.b.ins().fabs(x),
            UnaryOp::Sqrt => self.b.ins().sqrt(x),
            UnaryOp::Rsqrt => {
                let s = self.b.ins().sqrt(x);
                let o = one(self);
                self.b.ins().fdiv(o, s)
            }
            UnaryOp::Recip => {
                let o = one(self);
                self.b.ins().fdiv(o, x)
            }
            UnaryOp::Relu => {
                // NaN stays NaN, like the interpreter: select on x > 0 instead of fmax.
                let m = gt0(self, x);
                let z = zero(self);
                let keep_nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
                let keep_nan = if lanes == 4 {
                    self.b
                        .ins()
                        .bitcast(types::F32X4, MemFlagsData::new(), keep_nan)
                } else {
                    keep_nan
                };
                let r = pick(self, m, x, z);
                pick(self, keep_nan, x, r)
            }
            UnaryOp::LeakyRelu(slope) => {
                let m = gt0(self, x);
                let s = self.constant(dtype, slope, lanes);
                let sx = self.b.ins().fmul(x, s);
                pick(self, m, x, sx)
            }
            UnaryOp::Sign => {
                let o = one(self);
                let mo = self.b.ins().fneg(o);
                let z = zero(self);
                let pos = self.b.ins().fcmp(FloatCC::GreaterThan, x, z);
                let neg = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                let is_zero = self.b.ins().fcmp(FloatCC::Equal, x, z);
                // NaN falls through to x itself.
                let r = self.b.ins().select(is_zero, z, x);
                let r = self.b.ins().select(neg, mo, r);
                self.b.ins().select(pos, o, r)
            }
            // f32 (scalar and f32x4 alike, so every element gets the same rounding)
            // uses the emitted approximations; f64 calls libm.
            UnaryOp::Exp if dtype == DType::F32 => approx::exp(&mut self.b, x),
            UnaryOp::Log if dtype == DType::F32 => approx::log(&mut self.b, x),
            UnaryOp::Tanh if dtype == DType::F32 => approx::tanh(&mut self.b, x),
            UnaryOp::Erf if dtype == DType::F32 => approx::erf(&mut self.b, x),
            UnaryOp::Sigmoid if dtype == DType::F32 => approx::sigmoid(&mut self.b, x),
            UnaryOp::Exp => self.call_f64("exp", x),
            UnaryOp::Log => self.call_f64("log", x),
            UnaryOp::Tanh => self.call_f64("tanh", x),
            UnaryOp::Erf => self.call_f64("erf", x),
            // The interpreter's two branches, bit for bit: `1 / (1 + exp(-x))` for
            // `x >= 0`, `exp(x) / (1 + exp(x))` below (NaN takes the second).
            UnaryOp::Sigmoid => {
                let a = self.b.ins().fabs(x);
                let n = self.b.ins().fneg(a);
                let e = self.call_f64("exp", n);
                let o = one(self);
                let d = self.b.ins().fadd(o, e);
                let z = zero(self);
                let non_negative = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, z);
                let num = self.b.ins().select(non_negative, o, e);
                self.b.ins().fdiv(num, d)
            }
        }
    }

    fn cast(&mut self, x: Value, from: DType, to: DType) -> Value {
        use DType::*;
        match (from, to) {
            (a, b) if a == b => x,
            (F32, F64) => self.b.ins().fpromote(types::F64, x),
            (F64, F32) => self.b.ins().fdemote(types::F32, x),
            (F32 | F64, I32) => self.b.ins().fcvt_to_sint_sat(types::I32, x),
            (I32, F32 | F64) => self.b.ins().fcvt_from_sint(scalar_type(to), x),
            (Bool, I32) => self.b.ins().uextend(types::I32, x),
            (Bool, F32 | F64) => {
                let i = self.b.ins().uextend(types::I32, x);
                self.b.ins().fcvt_from_uint(scalar_type(to), i)
            }
            (F32 | F64, Bool) => {
                let z = self.constant(from, 0.0, 1);
                self.b.ins().fcmp(FloatCC::NotEqual, x, z)
            }
            (I32, Bool) => self.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0),
            _ => unreachable!("all pairs covered"),
        }
    }
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}
