//! Shapes as types, and all of strata's shape arithmetic in one place.
//!
//! A sample's shape is a type: [`Shape3<H, W, C>`] for an image (height, width,
//! channels, channels last) and [`Shape1<N>`] for a vector, with typenum's
//! unsigned integers (`U32`, ...) as the sizes. Each layer computes its output
//! shape from its input shape at the type level with the formulas below, so a
//! chain whose shapes do not fit together does not type-check.
//!
//! The same formulas exist as plain functions ([`conv_output_len`],
//! [`same_padding`]), written once in the `strata-shapes` crate and
//! re-exported here: the kernels use them at run time, and the `sequential!`
//! macro uses them at expansion to report shape errors in words.

use core::fmt::Debug;
use core::marker::PhantomData;
use core::ops::{Add, Div, Mul, Rem, Sub};

use typenum::{
    Add1, Cmp, Compare, Diff, Equal, Greater, Max, Maximum, Mod, NonZero, Prod, Quot, Sub1, Sum,
    UTerm, Unsigned, B1,
};

/// The shape of one sample. Implemented by [`Shape1`] and [`Shape3`].
pub trait Shape: Copy + Default + Debug + Send + Sync + 'static {
    /// Number of axes (1 or 3).
    const RANK: usize;
    /// Number of `f32` values in one sample.
    const NUMEL: usize;
    /// Length of the last axis (channels, or features).
    const LAST: usize;
    /// The sizes of the axes, outermost first (`[H, W, C]` or `[N]`).
    const DIMS: &'static [usize];
}

/// A 3-D sample shape: height `H`, width `W`, channels `C` (channels last).
pub struct Shape3<H, W, C>(TypeMarker<(H, W, C)>);

/// Marks the types a value stands for without owning any: `fn() -> T` keeps
/// the marker `Send`, `Sync` and covariant whatever `T` is.
pub type TypeMarker<T> = PhantomData<fn() -> T>;

/// A 1-D sample shape of `N` features.
pub struct Shape1<N>(PhantomData<fn() -> N>);

macro_rules! marker_impls {
    ($name:ident < $($p:ident),* >, $text:literal) => {
        impl<$($p),*> Clone for $name<$($p),*> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<$($p),*> Copy for $name<$($p),*> {}
        impl<$($p),*> Default for $name<$($p),*> {
            fn default() -> Self {
                $name(PhantomData)
            }
        }
        impl<$($p),*> PartialEq for $name<$($p),*> {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }
        impl<$($p),*> Eq for $name<$($p),*> {}
        impl<$($p: Unsigned),*> Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, $text, $($p::USIZE),*)
            }
        }
    };
}
marker_impls!(Shape3<H, W, C>, "Shape3<{}, {}, {}>");
marker_impls!(Shape1<N>, "Shape1<{}>");

impl<H: Unsigned, W: Unsigned, C: Unsigned> Shape for Shape3<H, W, C> {
    const RANK: usize = 3;
    const NUMEL: usize = H::USIZE * W::USIZE * C::USIZE;
    const LAST: usize = C::USIZE;
    const DIMS: &'static [usize] = &[H::USIZE, W::USIZE, C::USIZE];
}

impl<N: Unsigned> Shape for Shape1<N> {
    const RANK: usize = 1;
    const NUMEL: usize = N::USIZE;
    const LAST: usize = N::USIZE;
    const DIMS: &'static [usize] = &[N::USIZE];
}

pub use strata_shapes::{conv_output_len, format_batch_shape, format_dims, same_padding, Padding};

/// Type-level marker for [`Padding::Valid`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Valid;

/// Type-level marker for [`Padding::Same`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Same;

/// A type-level padding mode: [`Valid`] or [`Same`].
pub trait PaddingMode: Copy + Default + Debug + Send + Sync + 'static {
    /// The runtime value of this mode.
    const PADDING: Padding;
}
impl PaddingMode for Valid {
    const PADDING: Padding = Padding::Valid;
}
impl PaddingMode for Same {
    const PADDING: Padding = Padding::Same;
}

/// The output length of a window of `K` at stride `S` over an axis of `L`,
/// computed at the type level: `(L - K) / S + 1` for [`Valid`] (which needs
/// `L >= K`), `ceil(L / S)` for [`Same`]. As in [`conv_output_len`], a zero
/// kernel, stride or input length has no output.
#[diagnostic::on_unimplemented(
    message = "the window does not fit the input: under `{Self}` padding, see the note below",
    label = "window larger than its input, or a zero kernel, stride or input",
    note = "with 'valid' padding every window must fit inside the input; use a smaller kernel or pool, or padding = same"
)]
pub trait WindowOut<L, K, S> {
    /// The output length.
    type Output: Unsigned;
}

/// The outcome of comparing an input length with a window (typenum's
/// [`Compare`]) when the window fits: the input is at least as long.
///
/// Its own trait, rather than a `Sub` bound, so that a window that does not
/// fit is reported in these words instead of as a typenum subtraction.
#[diagnostic::on_unimplemented(
    message = "a kernel or pool window is larger than its input under 'valid' padding",
    label = "the window does not fit here",
    note = "with 'valid' padding every window must fit inside the input; use a smaller window, or padding = same"
)]
pub trait WindowFits {}
impl WindowFits for Greater {}
impl WindowFits for Equal {}

impl<L, K, S> WindowOut<L, K, S> for Valid
where
    K: NonZero,
    L: Cmp<K> + Max<K>,
    Compare<L, K>: WindowFits,
    // max(L, K) - K is L - K where the window fits, and never fails to
    // exist, so the only error is the WindowFits one above.
    Maximum<L, K>: Sub<K>,
    Diff<Maximum<L, K>, K>: Div<S>,
    Quot<Diff<Maximum<L, K>, K>, S>: Add<B1>,
    Add1<Quot<Diff<Maximum<L, K>, K>, S>>: Unsigned,
{
    type Output = Add1<Quot<Diff<Maximum<L, K>, K>, S>>;
}

impl<L, K, S> WindowOut<L, K, S> for Same
where
    L: NonZero + Add<S>,
    K: NonZero,
    Sum<L, S>: Sub<B1>,
    Sub1<Sum<L, S>>: Div<S>,
    Quot<Sub1<Sum<L, S>>, S>: Unsigned,
{
    type Output = Quot<Sub1<Sum<L, S>>, S>;
}

/// Output length along one axis: see [`WindowOut`].
pub type WindowLen<L, K, S, P> = <P as WindowOut<L, K, S>>::Output;

/// The shape of a sliding-window layer's output (convolution with `F`
/// filters, or pooling that keeps the channels when `F` is the input's `C`).
pub type WindowShape<H, W, KH, KW, SH, SW, P, F> =
    Shape3<WindowLen<H, KH, SH, P>, WindowLen<W, KW, SW, P>, F>;

/// Shapes whose last axis can be replaced (what `Dense` does to its input,
/// as in Keras, where Dense acts on the last axis).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a sample shape a Dense layer can take",
    note = "Dense takes a Shape1<N> (after Flatten) or a Shape3<H, W, C> (acting on the channels)"
)]
pub trait LastAxis: Shape {
    /// The same shape with the last axis of length `U`.
    type WithLast<U: Unsigned>: Shape;
}
impl<N: Unsigned> LastAxis for Shape1<N> {
    type WithLast<U: Unsigned> = Shape1<U>;
}
impl<H: Unsigned, W: Unsigned, C: Unsigned> LastAxis for Shape3<H, W, C> {
    type WithLast<U: Unsigned> = Shape3<H, W, U>;
}

/// Shapes that [`Flatten`](crate::Flatten) turns into a vector.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be flattened",
    note = "Flatten takes a Shape3<H, W, C> or a Shape1<N>"
)]
pub trait Flattenable: Shape {
    /// `Shape1<H * W * C>`.
    type Flat: Shape;
}
impl<N: Unsigned> Flattenable for Shape1<N> {
    type Flat = Shape1<N>;
}
impl<H, W, C> Flattenable for Shape3<H, W, C>
where
    H: Unsigned + Mul<W>,
    W: Unsigned,
    C: Unsigned,
    Prod<H, W>: Mul<C>,
    Prod<Prod<H, W>, C>: Unsigned,
{
    type Flat = Shape1<Prod<Prod<H, W>, C>>;
}

/// Shapes with a height and a width: what global pooling reduces to its
/// channels.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no height and width to pool over",
    label = "global pooling needs a 3-D input here",
    note = "GlobalAveragePooling2D and GlobalMaxPooling2D take a Shape3<H, W, C> (height, width, channels) and give a Shape1<C>"
)]
pub trait Spatial: Shape {
    /// The number of channels, `C`.
    type Channels: Unsigned;
}
impl<H: Unsigned, W: Unsigned, C: Unsigned> Spatial for Shape3<H, W, C> {
    type Channels = C;
}

/// The span of a window of `Self` taps spaced `D` apart (Keras's
/// `dilation_rate`): `(K - 1)·D + 1`, the effective kernel that the output
/// length and 'same' padding follow. A dilation of 1 is the kernel itself.
#[diagnostic::on_unimplemented(
    message = "a kernel of `{Self}` taps cannot be dilated by `{D}`",
    label = "no dilated window here",
    note = "kernel sizes and dilation rates are at least 1"
)]
pub trait Dilate<D> {
    /// The effective kernel size.
    type Output: Unsigned;
}

impl<K, D> Dilate<D> for K
where
    K: Sub<B1>,
    Sub1<K>: Mul<D>,
    Prod<Sub1<K>, D>: Add<B1>,
    Add1<Prod<Sub1<K>, D>>: Unsigned,
{
    type Output = Add1<Prod<Sub1<K>, D>>;
}

/// The effective size of a `K`-tap window dilated by `D`: see [`Dilate`].
pub type DilatedKernel<K, D> = <K as Dilate<D>>::Output;

/// A remainder of zero: what a channel count leaves when divided by the
/// number of channel groups of a grouped convolution.
///
/// Its own trait, implemented for zero only, so that groups that do not
/// divide the channels are reported in these words.
#[diagnostic::on_unimplemented(
    message = "the channel groups do not divide the channels evenly",
    label = "channels left over after splitting into groups",
    note = "with `groups = g`, both the input channels and the filters must be multiples of g"
)]
pub trait NoRemainder {}
impl NoRemainder for UTerm {}

/// `N` channels split evenly into `G` groups: `N mod G` is zero.
pub trait DividesInto<G>: Rem<G> {}
impl<N, G> DividesInto<G> for N
where
    N: Rem<G>,
    Mod<N, G>: NoRemainder,
{
}

/// A sample shape's number of values as a type: what [`Reshape`](crate::Reshape)
/// compares between its input and its output.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a sample shape",
    note = "sample shapes are Shape3<H, W, C> and Shape1<N>"
)]
pub trait ElementCount: Shape {
    /// `H·W·C`, or `N`.
    type Count: Unsigned;
}
impl<N: Unsigned> ElementCount for Shape1<N> {
    type Count = N;
}
impl<H, W, C> ElementCount for Shape3<H, W, C>
where
    H: Unsigned + Mul<W>,
    W: Unsigned,
    C: Unsigned,
    Prod<H, W>: Mul<C>,
    Prod<Prod<H, W>, C>: Unsigned,
{
    type Count = Prod<Prod<H, W>, C>;
}

/// The outcome of comparing two element counts when they are the same.
#[diagnostic::on_unimplemented(
    message = "a Reshape must keep the number of values of a sample",
    label = "the input and the target shape hold different numbers of values",
    note = "Reshape((h, w, c)) or Reshape((n,)) takes exactly h·w·c or n values per sample"
)]
pub trait SameCount {}
impl SameCount for Equal {}

/// Shapes that hold as many values as `Out`: what a reshape from `Self` to
/// `Out` needs.
pub trait ReshapesTo<Out: ElementCount>: ElementCount {}
impl<In, Out> ReshapesTo<Out> for In
where
    In: ElementCount,
    Out: ElementCount,
    In::Count: Cmp<Out::Count>,
    Compare<In::Count, Out::Count>: SameCount,
{
}

#[cfg(test)]
mod tests {
    use super::*;
    use typenum::{U1, U2, U3, U32, U42, U5, U7, U8, U9};

    #[test]
    fn runtime_rules_match_keras() {
        // Keras examples: 8 wide, k3 s2 same -> 4 out, pad 0 before / 1 after.
        assert_eq!(conv_output_len(8, 3, 2, Padding::Same), Some(4));
        assert_eq!(same_padding(8, 3, 2, Padding::Same), (0, 1));
        // 2x2 kernel stride 1 same: 0 before, 1 after.
        assert_eq!(same_padding(5, 2, 1, Padding::Same), (0, 1));
        assert_eq!(same_padding(9, 3, 2, Padding::Same), (1, 1));
        assert_eq!(same_padding(224, 7, 2, Padding::Same), (2, 3));
        assert_eq!(conv_output_len(9, 3, 1, Padding::Valid), Some(7));
        assert_eq!(conv_output_len(2, 3, 1, Padding::Valid), None);
        assert_eq!(conv_output_len(7, 2, 2, Padding::Valid), Some(3));
        assert_eq!(conv_output_len(7, 2, 0, Padding::Valid), None);
    }

    #[test]
    fn type_level_rules_match_runtime() {
        fn len<L, K, S, P>() -> usize
        where
            P: WindowOut<L, K, S>,
        {
            <WindowLen<L, K, S, P> as Unsigned>::USIZE
        }
        assert_eq!(len::<U9, U3, U1, Valid>(), 7);
        assert_eq!(len::<U9, U3, U2, Same>(), 5);
        assert_eq!(len::<U8, U3, U2, Same>(), 4);
        assert_eq!(len::<U7, U2, U2, Valid>(), 3);
        assert_eq!(len::<U32, U3, U1, Same>(), 32);
        assert_eq!(len::<U5, U5, U1, Valid>(), 1);
        assert_eq!(len::<U1, U1, U1, Same>(), 1);
        assert_eq!(<Shape3<U32, U32, U3> as Shape>::NUMEL, 3072);
        assert_eq!(<Shape3<U32, U32, U3> as Shape>::DIMS, &[32, 32, 3]);
        assert_eq!(
            <<Shape3<U2, U3, U7> as Flattenable>::Flat as Shape>::DIMS,
            &[42]
        );
    }

    #[test]
    fn dilated_windows_and_counts_match_runtime() {
        fn len<L, K, S, D, P>() -> usize
        where
            K: Dilate<D>,
            P: WindowOut<L, DilatedKernel<K, D>, S>,
        {
            <WindowLen<L, DilatedKernel<K, D>, S, P> as Unsigned>::USIZE
        }
        fn reshapes<A: ReshapesTo<B>, B: ElementCount>() -> usize {
            <A::Count as Unsigned>::USIZE
        }
        fn divides<N: DividesInto<G>, G>() {}
        assert_eq!(<DilatedKernel<U3, U1> as Unsigned>::USIZE, 3);
        assert_eq!(<DilatedKernel<U3, U2> as Unsigned>::USIZE, 5);
        assert_eq!(len::<U9, U3, U1, U2, Valid>(), 5);
        assert_eq!(len::<U8, U3, U2, U2, Same>(), 4);
        assert_eq!(reshapes::<Shape3<U2, U3, U7>, Shape1<U42>>(), 42);
        assert_eq!(reshapes::<Shape1<U8>, Shape3<U1, U1, U8>>(), 8);
        divides::<U8, U2>();
        divides::<U9, U3>();
    }
}
