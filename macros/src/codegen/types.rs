//! Writing types: typenum sizes, shapes, and names from `strata`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

/// How generated code names what `strata::__macro_support` exports: bare
/// inside a block that imports it, by absolute path in items the macro
/// places in the caller's module (which must not see an import).
pub struct Support(Option<TokenStream>);

impl Support {
    /// Bare names, under `use ::strata::__macro_support::*`.
    pub fn imported() -> Support {
        Support(None)
    }

    /// `::strata::__macro_support::Name`.
    pub fn absolute() -> Support {
        Support(Some(quote!(::strata::__macro_support::)))
    }

    pub fn name(&self, name: &str) -> TokenStream {
        let id = Ident::new(name, Span::call_site());
        let prefix = &self.0;
        quote!(#prefix #id)
    }

    /// typenum's type for `n`: its named constant up to 1024, beyond that a
    /// `UInt` chain built on the largest named prefix (typenum names no
    /// `U2304`).
    pub fn unsigned(&self, n: usize) -> TokenStream {
        if n <= 1024 {
            return self.name(&format!("U{n}"));
        }
        let high = self.unsigned(n >> 1);
        let bit = self.name(if n & 1 == 1 { "B1" } else { "B0" });
        let uint = self.name("UInt");
        quote!(#uint<#high, #bit>)
    }

    /// `Shape3<U32, U32, U3>` or `Shape1<U10>`.
    pub fn shape(&self, dims: &[usize]) -> TokenStream {
        let d: Vec<TokenStream> = dims.iter().map(|&n| self.unsigned(n)).collect();
        let (name, d) = match d.as_slice() {
            [n] => ("Shape1", quote!(#n)),
            [h, w, c] => ("Shape3", quote!(#h, #w, #c)),
            _ => unreachable!("the checker only lets ranks 1 and 3 through"),
        };
        let name = self.name(name);
        quote!(#name<#d>)
    }
}

/// `conv2d_0`: Keras's snake-case kind and the layer's position, which is
/// also its index in weight files (`conv2d_0` holds `0.weight`).
pub fn field_name(base: &str, index: usize) -> Ident {
    format_ident!("{}_{}", base, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_sizes_are_uint_chains() {
        let s = Support::imported();
        assert_eq!(s.unsigned(1024).to_string(), "U1024");
        // 2304 = 1152 * 2: UInt<U1152...> down to the named U576.
        assert_eq!(
            s.unsigned(2304).to_string(),
            "UInt < UInt < U576 , B0 > , B0 >"
        );
        assert_eq!(
            Support::absolute().shape(&[10]).to_string(),
            ":: strata :: __macro_support :: Shape1 < :: strata :: __macro_support :: U10 >"
        );
    }
}
