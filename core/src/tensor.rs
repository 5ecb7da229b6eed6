//! A layer's named tensors: trained parameters and buffers, in one place.
//!
//! Each layer declares its tensors once, with [`declare_tensors!`](crate::declare_tensors),
//! by name (`weight`, `bias`, `running_mean`...). Everything else follows
//! from that one declaration through the visitors here: the weight-file
//! keys and shapes, saving and loading, gradients, zeroing them, and the
//! optimizer step. As in PyTorch, a tensor is either a [`Role::Parameter`]
//! (trained, with a gradient: `nn.Parameter`) or a [`Role::Buffer`] (state
//! that is saved and loaded but never gets a gradient: `register_buffer`,
//! such as BatchNormalization's running statistics).
//!
//! A layer stores a tensor in whatever layout its kernels like; the
//! tensor's [`Layout`] says how that maps to the PyTorch layout of the
//! weight files, so the conversion is written once, here.

use core::fmt;
use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};

use crate::init::Initializer;
use crate::regularizers::Regularizer;

/// Whether a tensor is trained or only kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Trained: it has a gradient and the optimizer updates it.
    Parameter,
    /// Kept, saved and loaded, never trained (no gradient).
    Buffer,
}

/// The element type a tensor has in a weights file. Values are held as
/// `f32` either way; an [`Dtype::I64`] tensor is a count (PyTorch's
/// BatchNorm `num_batches_tracked`), which Keras does not count among the
/// parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// A float: every parameter and every other buffer.
    F32,
    /// A 64-bit integer (held as an `f32`, exact up to 2^24).
    I64,
}

/// How a tensor's stored values map to PyTorch's layout.
///
/// Every layout is a permutation: [`Layout::stored_index`] gives, for each
/// flat index in PyTorch's layout, the flat index in storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Stored as PyTorch stores it.
    Plain,
    /// A convolution kernel stored HWIO, `[kh, kw, in, out]` (Keras's
    /// layout), which PyTorch holds as `[out, in, kh, kw]`.
    Hwio {
        /// Kernel height.
        kh: usize,
        /// Kernel width.
        kw: usize,
        /// Input channels (per group).
        cin: usize,
        /// Output channels.
        cout: usize,
    },
    /// A dense kernel stored `[in, units]` (Keras's layout), which PyTorch
    /// holds as `[units, in]`. After a `Flatten` of `(H, W, C)`, PyTorch's
    /// in-features are in `(C, H, W)` order while strata's are in
    /// `(H, W, C)` order: `flattened` records that.
    InUnits {
        /// In-features.
        inputs: usize,
        /// Units (out-features).
        units: usize,
        /// `[H, W, C]` of the flattened input, if any.
        flattened: Option<[usize; 3]>,
    },
}

impl Layout {
    /// The storage index of PyTorch-layout flat index `torch`.
    pub fn stored_index(&self, torch: usize) -> usize {
        match *self {
            Layout::Plain => torch,
            Layout::Hwio { kh, kw, cin, cout } => {
                // torch = ((o * cin + i) * kh + y) * kw + x
                let x = torch % kw;
                let y = (torch / kw) % kh;
                let i = (torch / (kw * kh)) % cin;
                let o = torch / (kw * kh * cin);
                ((y * kw + x) * cin + i) * cout + o
            }
            Layout::InUnits {
                inputs,
                units,
                flattened,
            } => {
                let (u, t) = (torch / inputs, torch % inputs);
                let feature = match flattened {
                    Some([h, w, c]) => {
                        let (ch, rest) = (t / (h * w), t % (h * w));
                        rest * c + ch
                    }
                    None => t,
                };
                feature * units + u
            }
        }
    }
}

/// One named tensor of a layer: its values, its gradient (parameters only)
/// and how it appears in a weight file.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    role: Role,
    dtype: Dtype,
    /// The shape in PyTorch's layout, as in weight files.
    shape: Vec<usize>,
    layout: Layout,
    values: Vec<f32>,
    /// Same layout as `values`; empty until the first backward pass, so
    /// inference never pays for it.
    grad: Vec<f32>,
    /// Keras's `trainable`: a frozen parameter gets no update, a frozen
    /// buffer (BatchNormalization's statistics) is not moved by training.
    trainable: bool,
    /// How the owning layer draws this tensor; `None`: the layer's default.
    initializer: Option<Initializer>,
    /// A penalty on the values added to the training loss.
    regularizer: Option<Regularizer>,
    /// What the owning layer computed from the values (see
    /// [`Tensor::derived`]); emptied by every access that can change them.
    derived: Derived,
}

/// A value computed from a tensor's values, under a key. Copies of a
/// tensor start without one, and two tensors compare equal whatever they
/// hold: it is a cache, not part of the tensor.
#[derive(Default)]
struct Derived(Mutex<Option<(u64, Arc<dyn Any + Send + Sync>)>>);

impl Derived {
    fn clear(&mut self) {
        *self.0.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("role", &self.role)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("layout", &self.layout)
            .field("trainable", &self.trainable)
            .finish_non_exhaustive()
    }
}

impl Tensor {
    /// A trained parameter of PyTorch shape `shape`, stored as `layout`
    /// says, filled with `value`.
    pub fn parameter(shape: Vec<usize>, layout: Layout, value: f32) -> Self {
        Tensor::new(Role::Parameter, shape, layout, value)
    }

    /// A buffer (saved, never trained) of shape `shape`, filled with `value`.
    pub fn buffer(shape: Vec<usize>, value: f32) -> Self {
        Tensor::new(Role::Buffer, shape, Layout::Plain, value)
    }

    /// A count buffer: an integer scalar (shape `[]`) that weights files
    /// hold as I64, starting at 0. Files may leave it out (it is loaded
    /// when present), and it is not a parameter in Keras's counts.
    pub fn counter() -> Self {
        Tensor {
            dtype: Dtype::I64,
            ..Tensor::new(Role::Buffer, Vec::new(), Layout::Plain, 0.0)
        }
    }

    fn new(role: Role, shape: Vec<usize>, layout: Layout, value: f32) -> Self {
        let len = shape.iter().product();
        Tensor {
            role,
            dtype: Dtype::F32,
            shape,
            layout,
            values: vec![value; len],
            grad: Vec::new(),
            trainable: true,
            initializer: None,
            regularizer: None,
            derived: Derived::default(),
        }
    }

    /// `make(values)`, computed once and kept until the values change (any
    /// `&mut` access to them: an optimizer step, loading weights): what a
    /// layer derives from its weights for fast inference (a convolution's
    /// Winograd-transformed kernel). `key` names what is kept; asking for
    /// another key, or another type, recomputes and replaces it. Safe to
    /// call from many threads at once (a shared model): one computes, the
    /// others wait and share the result.
    pub fn derived<T, F>(&self, key: u64, make: F) -> Arc<T>
    where
        T: Any + Send + Sync,
        F: FnOnce(&[f32]) -> T,
    {
        let mut slot = self
            .derived
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((k, value)) = slot.as_ref() {
            if *k == key {
                if let Ok(value) = Arc::clone(value).downcast::<T>() {
                    return value;
                }
            }
        }
        let value = Arc::new(make(&self.values));
        *slot = Some((key, Arc::clone(&value) as Arc<dyn Any + Send + Sync>));
        value
    }

    /// Whether training may change this tensor (Keras's `trainable`; true
    /// unless frozen).
    pub fn is_trainable(&self) -> bool {
        self.trainable
    }

    /// Freezes (`false`) or unfreezes the tensor: a frozen parameter gets
    /// no optimizer update and counts as non-trainable in summaries.
    pub fn set_trainable(&mut self, trainable: bool) {
        self.trainable = trainable;
    }

    /// The initializer chosen for this tensor, if not the layer's default.
    pub fn initializer(&self) -> Option<Initializer> {
        self.initializer
    }

    /// Chooses how the layer draws this tensor the next time it
    /// initializes (`Layer::initialize`); the values are not redrawn here.
    pub fn set_initializer(&mut self, initializer: Option<Initializer>) {
        self.initializer = initializer;
    }

    /// The penalty on this tensor added to the training loss, if any.
    pub fn regularizer(&self) -> Option<Regularizer> {
        self.regularizer
    }

    /// Sets (or with `None` removes) the penalty on this tensor.
    pub fn set_regularizer(&mut self, regularizer: Option<Regularizer>) {
        self.regularizer = regularizer;
    }

    /// Parameter or buffer.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The element type in weights files.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The shape in PyTorch's layout.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.values.len()
    }

    /// How the stored values map to PyTorch's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Changes how the stored values are read and written in PyTorch's
    /// layout (the values themselves stay as they are).
    pub fn set_layout(&mut self, layout: Layout) {
        self.derived.clear();
        self.layout = layout;
    }

    /// The values, in the layer's storage layout.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The values, writable, in the layer's storage layout.
    pub fn values_mut(&mut self) -> &mut [f32] {
        self.derived.clear();
        &mut self.values
    }

    /// The accumulated gradient (storage layout), empty before the first
    /// backward pass and always for buffers.
    pub fn grad(&self) -> &[f32] {
        &self.grad
    }

    /// The gradient to accumulate into, created as zeros on first use.
    pub fn grad_mut(&mut self) -> &mut [f32] {
        if self.grad.len() != self.values.len() {
            self.grad.clear();
            self.grad.resize(self.values.len(), 0.0);
        }
        &mut self.grad
    }

    /// The values and the gradient (created as zeros on first use),
    /// together: what a backward kernel reads and writes, and what an
    /// optimizer step updates.
    pub fn values_and_grad_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        self.grad_mut();
        self.derived.clear();
        (&mut self.values, &mut self.grad)
    }

    /// Resets the gradient to zero (keeping it empty if it never existed).
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }

    /// The values in PyTorch's layout.
    pub fn export(&self) -> Vec<f32> {
        self.to_torch(&self.values)
    }

    /// The gradient in PyTorch's layout (zeros if none was computed).
    pub fn export_grad(&self) -> Vec<f32> {
        if self.grad.is_empty() {
            vec![0.0; self.values.len()]
        } else {
            self.to_torch(&self.grad)
        }
    }

    fn to_torch(&self, stored: &[f32]) -> Vec<f32> {
        (0..stored.len())
            .map(|t| stored[self.layout.stored_index(t)])
            .collect()
    }

    /// Overwrites the values from PyTorch-layout `torch`. Returns `false`,
    /// changing nothing, if the length is not the tensor's.
    pub fn import(&mut self, torch: &[f32]) -> bool {
        if torch.len() != self.values.len() {
            return false;
        }
        self.derived.clear();
        for (t, v) in torch.iter().enumerate() {
            self.values[self.layout.stored_index(t)] = *v;
        }
        true
    }
}

/// One step of a tensor's key: a layer's position in a chain (`3`), or a
/// named part of a layer (`main`, `shortcut`, `depthwise`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A position in a chain.
    Index(usize),
    /// A named sub-module.
    Name(&'static str),
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Index(i) => write!(f, "{i}"),
            Segment::Name(n) => f.write_str(n),
        }
    }
}

/// Where a tensor sits in a model: the segments that lead to its layer
/// (`[3, main, 0]` inside the main branch of the residual at position 3)
/// and its name in that layer.
#[derive(Clone, Copy, Debug)]
pub struct TensorKey<'a> {
    /// The way to the layer, outermost first.
    pub path: &'a [Segment],
    /// The name in its layer: `weight`, `bias`, `running_mean`...
    pub name: &'a str,
}

impl TensorKey<'_> {
    /// Whether this is the key `wanted` (`"3.main.0.weight"`), compared
    /// without formatting it.
    pub fn is(&self, wanted: &str) -> bool {
        let mut rest = wanted;
        for segment in self.path {
            let head = match segment {
                Segment::Index(i) => {
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    match rest[..digits].parse::<usize>() {
                        Ok(n) if n == *i && (digits == 1 || !rest.starts_with('0')) => digits,
                        _ => return false,
                    }
                }
                Segment::Name(n) if rest.starts_with(n) => n.len(),
                Segment::Name(_) => return false,
            };
            match rest[head..].strip_prefix('.') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest == self.name
    }
}

impl fmt::Display for TensorKey<'_> {
    /// PyTorch's state-dict key: `3.main.0.weight`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in self.path {
            write!(f, "{segment}.")?;
        }
        f.write_str(self.name)
    }
}

/// Visits a model's tensors, read-only. Models pass a [`VisitPath`] down
/// to their layers (see [`VisitPath::child`]), so the visitor knows every
/// tensor's full key.
pub trait Visitor {
    /// Called with each tensor in declaration order.
    fn tensor(&mut self, key: TensorKey<'_>, tensor: &Tensor);
}

/// Visits a model's tensors, writable. See [`Visitor`].
pub trait VisitorMut {
    /// Called with each tensor in declaration order.
    fn tensor(&mut self, key: TensorKey<'_>, tensor: &mut Tensor);
}

/// The way a visit has come from the model to the current layer: what
/// models push and pop around their layers.
#[derive(Clone, Debug, Default)]
pub struct VisitPath(Vec<Segment>);

impl VisitPath {
    /// Visits `layer`'s tensors as layer `index` of the current chain.
    pub fn child<L: crate::Layer + ?Sized>(
        &mut self,
        index: usize,
        layer: &L,
        v: &mut dyn Visitor,
    ) {
        self.inside(Segment::Index(index), |path| layer.visit_tensors(path, v));
    }

    /// Writable twin of [`VisitPath::child`].
    pub fn child_mut<L: crate::Layer + ?Sized>(
        &mut self,
        index: usize,
        layer: &mut L,
        v: &mut dyn VisitorMut,
    ) {
        self.inside(Segment::Index(index), |path| {
            layer.visit_tensors_mut(path, v)
        });
    }

    /// Visits `layer`'s tensors as the part `name` of the current layer
    /// (`main`, `shortcut`, `depthwise`).
    pub fn part<L: crate::Layer + ?Sized>(
        &mut self,
        name: &'static str,
        layer: &L,
        v: &mut dyn Visitor,
    ) {
        self.inside(Segment::Name(name), |path| layer.visit_tensors(path, v));
    }

    /// Writable twin of [`VisitPath::part`].
    pub fn part_mut<L: crate::Layer + ?Sized>(
        &mut self,
        name: &'static str,
        layer: &mut L,
        v: &mut dyn VisitorMut,
    ) {
        self.inside(Segment::Name(name), |path| layer.visit_tensors_mut(path, v));
    }

    fn inside(&mut self, segment: Segment, visit: impl FnOnce(&mut Self)) {
        self.0.push(segment);
        visit(self);
        self.0.pop();
    }

    /// The key of tensor `name` of the current layer.
    pub fn key<'a>(&'a self, name: &'a str) -> TensorKey<'a> {
        TensorKey {
            path: &self.0,
            name,
        }
    }
}

/// A field that holds a tensor, or an optional one (a bias that
/// `use_bias = false` leaves out): what [`declare_tensors!`](crate::declare_tensors) visits.
pub trait TensorSlot {
    /// Calls `v` with the tensor, if there is one.
    fn visit(&self, path: &VisitPath, name: &str, v: &mut dyn Visitor);
    /// Calls `v` with the tensor, writable, if there is one.
    fn visit_mut(&mut self, path: &VisitPath, name: &str, v: &mut dyn VisitorMut);
}

impl TensorSlot for Tensor {
    fn visit(&self, path: &VisitPath, name: &str, v: &mut dyn Visitor) {
        v.tensor(path.key(name), self);
    }
    fn visit_mut(&mut self, path: &VisitPath, name: &str, v: &mut dyn VisitorMut) {
        v.tensor(path.key(name), self);
    }
}

impl TensorSlot for Option<Tensor> {
    fn visit(&self, path: &VisitPath, name: &str, v: &mut dyn Visitor) {
        if let Some(t) = self {
            t.visit(path, name, v);
        }
    }
    fn visit_mut(&mut self, path: &VisitPath, name: &str, v: &mut dyn VisitorMut) {
        if let Some(t) = self {
            t.visit_mut(path, name, v);
        }
    }
}

/// Declares a layer's tensors once, by name and field, inside its `impl
/// Layer`: it writes [`Layer::visit_tensors`](crate::Layer::visit_tensors)
/// and [`Layer::visit_tensors_mut`](crate::Layer::visit_tensors_mut), from
/// which saving, loading, gradients and the optimizer step all follow.
/// Fields are [`Tensor`]s or `Option<Tensor>`s; names become weight-file
/// keys (`3.bias` as layer 3 of a model).
///
/// A layer that adds a trained bias to each feature:
///
/// ```
/// use std::marker::PhantomData;
/// use strata_core::tensor::{Layout, Tensor};
/// use strata_core::typenum::U3;
/// use strata_core::{declare_tensors, Batch, Context, Layer, Model, Shape, Shape1};
///
/// struct AddBias<S> {
///     bias: Tensor,
///     shape: PhantomData<S>,
/// }
///
/// impl<S: Shape> Layer for AddBias<S> {
///     type Input = S;
///     type Output = S;
///     type Tape = (); // the gradient needs nothing from the forward pass
///
///     fn kind(&self) -> &'static str {
///         "AddBias"
///     }
///     fn forward_into(&self, x: &Batch<S>, out: &mut Batch<S>, _: &mut Context<'_>) {
///         out.copy_from(x);
///         for row in out.as_mut_slice().chunks_mut(S::LAST) {
///             row.iter_mut().zip(self.bias.values()).for_each(|(v, b)| *v += b);
///         }
///     }
///     fn forward_taped(&mut self, x: Batch<S>, ctx: &mut Context<'_>) -> (Batch<S>, ()) {
///         (self.forward(&x, ctx), ())
///     }
///     fn backward(&mut self, _: (), grad: Batch<S>, _: &mut Context<'_>) -> Batch<S> {
///         let grad_bias = self.bias.grad_mut();
///         for row in grad.as_slice().chunks(S::LAST) {
///             grad_bias.iter_mut().zip(row).for_each(|(gb, g)| *gb += g);
///         }
///         grad
///     }
///     declare_tensors!(bias: bias);
/// }
///
/// let mut layer = AddBias::<Shape1<U3>> {
///     bias: Tensor::parameter(vec![3], Layout::Plain, 0.5),
///     shape: PhantomData,
/// };
/// assert_eq!(layer.params()[0].name, "bias");
/// assert!(layer.import_param("bias", &[1.0, 2.0, 3.0]));
/// let y = layer.predict(&Batch::<Shape1<U3>>::zeros(1));
/// assert_eq!(y.as_slice(), [1.0, 2.0, 3.0]);
/// ```
#[macro_export]
macro_rules! declare_tensors {
    ($($name:ident : $field:ident),* $(,)?) => {
        fn visit_tensors(&self, path: &mut $crate::tensor::VisitPath, v: &mut dyn $crate::tensor::Visitor) {
            $($crate::tensor::TensorSlot::visit(&self.$field, path, stringify!($name), v);)*
        }
        fn visit_tensors_mut(
            &mut self,
            path: &mut $crate::tensor::VisitPath,
            v: &mut dyn $crate::tensor::VisitorMut,
        ) {
            $($crate::tensor::TensorSlot::visit_mut(&mut self.$field, path, stringify!($name), v);)*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwio_matches_pytorch_indexing() {
        // A 2x3 kernel, 2 in, 4 out: every torch index maps to the HWIO
        // index of the same (o, i, y, x), and the map is a permutation.
        let (kh, kw, cin, cout) = (2, 3, 2, 4);
        let layout = Layout::Hwio { kh, kw, cin, cout };
        let mut seen = vec![false; kh * kw * cin * cout];
        for o in 0..cout {
            for i in 0..cin {
                for y in 0..kh {
                    for x in 0..kw {
                        let torch = ((o * cin + i) * kh + y) * kw + x;
                        let hwio = ((y * kw + x) * cin + i) * cout + o;
                        assert_eq!(layout.stored_index(torch), hwio);
                        seen[hwio] = true;
                    }
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn in_units_after_flatten_reorders_features() {
        // Flatten of (1, 2, 3): PyTorch feature t = c * 2 + x, ours x * 3 + c.
        let layout = Layout::InUnits {
            inputs: 6,
            units: 2,
            flattened: Some([1, 2, 3]),
        };
        // torch [u = 1, t = 4]: channel 2, x 0 -> our feature 2.
        assert_eq!(layout.stored_index(6 + 4), 2 * 2 + 1);
        let plain = Layout::InUnits {
            inputs: 6,
            units: 2,
            flattened: None,
        };
        assert_eq!(plain.stored_index(6 + 4), 4 * 2 + 1);
    }

    #[test]
    fn import_export_round_trip_and_reject_wrong_length() {
        let mut t = Tensor::parameter(
            vec![4, 2, 2, 3],
            Layout::Hwio {
                kh: 2,
                kw: 3,
                cin: 2,
                cout: 4,
            },
            0.0,
        );
        let torch: Vec<f32> = (0..48).map(|i| i as f32).collect();
        assert!(t.import(&torch));
        assert_eq!(t.export(), torch);
        assert!(!t.import(&torch[1..]));
        assert_eq!(t.export(), torch);
        assert_eq!(t.export_grad(), vec![0.0; 48]);
        t.grad_mut()[0] = 1.0;
        assert_eq!(t.export_grad().iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn keys_read_as_state_dict_keys() {
        let path = [Segment::Index(3), Segment::Name("main"), Segment::Index(10)];
        let key = TensorKey {
            path: &path,
            name: "weight",
        };
        assert_eq!(key.to_string(), "3.main.10.weight");
        assert!(key.is("3.main.10.weight"));
        for other in [
            "3.main.1.weight",
            "3.main.10.bias",
            "3.main.010.weight",
            "3.shortcut.10.weight",
            "3.main.10.weight.x",
            "3.main.10",
            "",
        ] {
            assert!(!key.is(other), "{other}");
        }
    }
}
