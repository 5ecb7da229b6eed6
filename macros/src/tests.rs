//! Expanding chains inside the macro crate: the model the parser and the
//! checker build, the errors they report, and the shape of the code.

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;
use crate::model::{Checked, Known};
use crate::{check, codegen, invocation, parse};

fn run(chain: TokenStream) -> (Option<Checked>, Vec<String>) {
    let mut errors = Errors::default();
    let layers = parse::parse_chain(chain, &mut errors);
    let checked = check::check(layers, &mut errors);
    (checked, errors.messages())
}

fn errors_of(chain: TokenStream) -> Vec<String> {
    run(chain).1
}

fn shapes_of(chain: TokenStream) -> Vec<Known> {
    let (checked, errors) = run(chain);
    assert_eq!(errors, Vec::<String>::new());
    checked.expect("checked").shapes
}

/// The expansion without spaces, so that tests can look for pieces of it.
fn expand(chain: TokenStream) -> String {
    let (checked, errors) = run(chain);
    assert_eq!(errors, Vec::<String>::new());
    squash(codegen::expression(&checked.expect("checked")))
}

fn squash(tokens: TokenStream) -> String {
    tokens.to_string().replace(' ', "")
}

fn dims(d: &[usize]) -> Known {
    Known::Dims(d.to_vec())
}

#[test]
fn seed_network_shapes_follow_keras() {
    let shapes = shapes_of(quote!(
        Conv2D(32, (3, 3), padding = same, input_shape = (32, 32, 3)) => relu
        => Conv2D(32, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25)
        => Flatten => Dense(10) => softmax
    ));
    let expected = [
        dims(&[32, 32, 3]),
        dims(&[32, 32, 32]),
        dims(&[32, 32, 32]),
        dims(&[30, 30, 32]),
        dims(&[30, 30, 32]),
        dims(&[15, 15, 32]),
        dims(&[15, 15, 32]),
        dims(&[7200]),
        dims(&[10]),
        dims(&[10]),
    ];
    assert_eq!(shapes, expected);
}

#[test]
fn contract_example_expands_to_direct_field_calls() {
    let code =
        expand(quote!(Conv2D(8, (3, 3), input_shape = (8, 8, 3)) => relu => Flatten => Dense(2)));
    for piece in [
        "pubconv2d_0:Conv2D<Shape3<U8,U8,U3>,U8,U3,U3,U1,U1,Valid>",
        "pubactivation_1:Activation<Shape3<U6,U6,U8>,Relu>",
        "pubflatten_2:Flatten<Shape3<U6,U6,U8>>",
        "pubdense_3:Dense<Shape1<U288>,U2>",
        "dense_3:Dense::new(true,rng).follows_flatten_of(<Shape3<U6,U6,U8>asShape>::DIMS)",
        "typeOutput=Shape1<U2>;",
        "(x,(t0,t1,t2,t3,))",
        "letg=self.dense_3.backward(t3,g,ctx);ctx.take_logit_gradient();letg=self.flatten_2.backward(t2,g,ctx);",
        "path.child(0,&self.conv2d_0,v);",
    ] {
        assert!(code.contains(piece), "missing {piece} in {code}");
    }
    assert!(
        !code.contains("where"),
        "a model with known shapes needs no bounds: {code}"
    );
}

#[test]
fn two_blocks_leave_no_unused_parameter() {
    let code = expand(quote!(Input(8, 8, 3) => { b1 } => { b2 } => Flatten => Dense(2)));
    assert!(code.contains("pubstructSequential<B0,B1,S2,S3>"), "{code}");
    assert!(
        code.contains("B1:Layer<Input=<B0asLayer>::Output,Output=S2>"),
        "{code}"
    );
    assert!(code.contains("B0:Layer<Input=Shape3<U8,U8,U3>>"), "{code}");
}

#[test]
fn a_block_first_takes_its_own_input() {
    let code = expand(quote!({ b } => Flatten => Dense(2)));
    assert!(code.contains("typeInput=<B0asLayer>::Input;"), "{code}");
    assert!(code.contains("B0:Layer<Output=S1>"), "{code}");
}

#[test]
fn named_models_without_input_are_generic_over_it() {
    let input =
        quote!(pub struct VggBlock = Conv2D(64, (3, 3), padding = same) => relu => MaxPool(2, 2));
    let invocation = invocation::parse(input).expect("parses");
    let header = invocation.header.expect("named");
    let (checked, errors) = run(invocation.chain);
    assert!(errors.is_empty(), "{errors:?}");
    let code = squash(codegen::item(&header, &checked.expect("checked")));
    assert!(
        code.starts_with("#[allow(clippy::type_complexity)]pubstructVggBlock<S>where"),
        "{code}"
    );
    assert!(
        code.contains("const_:()={use::strata::__macro_support::*;"),
        "{code}"
    );
    assert!(
        !code.contains("S1"),
        "only the input is a parameter: {code}"
    );
}

#[test]
fn global_pooling_needs_an_image() {
    let errors = errors_of(quote!(Input(64) => Dense(10) => GlobalAveragePooling2D));
    assert_eq!(
        errors,
        ["GlobalAveragePooling2D needs a 3-D input (height, width, channels), but Dense(10) outputs a vector of 10"]
    );
    let shapes = shapes_of(quote!(Input(7, 7, 512) => GlobalMaxPool2D(keepdims = false)));
    assert_eq!(shapes[1], dims(&[512]));
}

#[test]
fn keepdims_is_not_supported_yet() {
    let errors = errors_of(quote!(Input(8, 8, 3) => GlobalAveragePooling2D(keepdims = true)));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("keepdims = true) is not supported yet"),
        "{errors:?}"
    );
}

#[test]
fn misspelled_arguments_get_a_suggestion() {
    let errors = errors_of(quote!(Input(8, 8, 3) => Conv2D(8, 3, paddding = same)));
    assert_eq!(
        errors,
        ["unknown argument `paddding` for Conv2D; did you mean `padding`?"]
    );
    let errors = errors_of(quote!(Input(8, 8, 3) => Conv2D(8, 3, data_format = "channels_last")));
    assert_eq!(
        errors,
        ["unknown argument `data_format` for Conv2D; it takes `filters`, `kernel_size`, `strides`, `padding`, `dilation_rate`, `groups`, `activation`, `use_bias`, `trainable`, `kernel_initializer`, `bias_initializer`, `kernel_regularizer`, `bias_regularizer`, `input_shape`"]
    );
    let errors = errors_of(quote!(Input(8, 8, 3) => DepthwiseConv2D(3, depth_multipler = 2)));
    assert_eq!(
        errors,
        ["unknown argument `depth_multipler` for DepthwiseConv2D; did you mean `depth_multiplier`?"]
    );
}

#[test]
fn unknown_layers_list_the_registry() {
    let errors = errors_of(quote!(Input(8, 8, 3) => UpSampling2D(2)));
    assert_eq!(
        errors,
        ["unknown layer `UpSampling2D`; strata knows Input, Conv2D, DepthwiseConv2D, SeparableConv2D, \
          BatchNormalization, Residual, MaxPool, MaxPooling2D, AvgPool, AveragePooling2D, Dropout, Flatten, Dense, \
          GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D, Reshape, Activation, LeakyReLU and relu, \
          sigmoid, tanh, softmax, linear, relu6, elu, selu, gelu, silu, swish, hard_sigmoid, hard_silu, \
          hard_swish, softplus, softsign, mish, leaky_relu, log_softmax (embed another block as `{ block }`)"]
    );
    assert_eq!(
        errors_of(quote!(Input(64) => Dence(10))),
        ["unknown layer `Dence`; did you mean `Dense`?"]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors = errors_of(quote!(
        Input(16) => Dropout(1.0) => Dense(0) => MaxPool(2, 2) => Conv2D(4, (3, 3), strides = (1, 0))
    ));
    assert_eq!(
        errors,
        [
            "a Dropout rate must be in [0, 1), but it is 1.0",
            "the number of units must be at least 1, but it is 0",
            "a stride must be at least 1, but it is 0",
            "MaxPool(2, 2) needs a 3-D input (height, width, channels), but Dense(0) outputs a vector of 0",
        ]
    );
}

#[test]
fn pooling_spellings() {
    let shapes = shapes_of(quote!(Input(9, 9, 2) => MaxPool(2, 3) => AveragePooling2D(2, 1, same)));
    assert_eq!(shapes[1..], [dims(&[4, 3, 2]), dims(&[4, 3, 2])]);
    let shapes = shapes_of(quote!(Input(8, 8, 1) => MaxPooling2D(pool_size = (2, 4), strides = 2)));
    assert_eq!(shapes[1], dims(&[4, 3, 1]));
}
