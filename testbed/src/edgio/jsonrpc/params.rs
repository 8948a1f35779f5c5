//! JSON-RPC parameters, positional (`[token, path, ...]`) or named (`{"token": ...}`),
//! read the same way by every method (rule 4: a wrong type is `-32602`). A `null`
//! counts as absent, which is how Python clients pass an omitted optional argument.

use serde_json::{Map, Value};

use super::RpcError;

pub(crate) struct Params<'a> {
    positional: &'a [Value],
    named: Option<&'a Map<String, Value>>,
}

impl<'a> Params<'a> {
    /// `params` of a request; absent means none. Anything but an array or object is
    /// `-32602`.
    pub(crate) fn new(params: Option<&'a Value>) -> Result<Self, RpcError> {
        match params {
            None | Some(Value::Null) => Ok(Params {
                positional: &[],
                named: None,
            }),
            Some(Value::Array(a)) => Ok(Params {
                positional: a,
                named: None,
            }),
            Some(Value::Object(o)) => Ok(Params {
                positional: &[],
                named: Some(o),
            }),
            Some(_) => Err(RpcError::invalid_params(
                "params must be an array or an object",
            )),
        }
    }

    /// Parameter `name`, at position `index` when positional.
    fn get(&self, index: usize, name: &str) -> Option<&'a Value> {
        let v = match self.named {
            Some(o) => o.get(name),
            None => self.positional.get(index),
        };
        v.filter(|v| !v.is_null())
    }

    pub(crate) fn str(&self, index: usize, name: &str) -> Result<Option<&'a str>, RpcError> {
        match self.get(index, name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RpcError::invalid_params(format!("{name} must be a string"))),
        }
    }

    pub(crate) fn required_str(&self, index: usize, name: &str) -> Result<&'a str, RpcError> {
        self.str(index, name)?
            .ok_or_else(|| RpcError::invalid_params(format!("{name} is required")))
    }

    pub(crate) fn int(&self, index: usize, name: &str) -> Result<Option<i64>, RpcError> {
        match self.get(index, name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| RpcError::invalid_params(format!("{name} must be an integer"))),
        }
    }

    pub(crate) fn bool(&self, index: usize, name: &str) -> Result<Option<bool>, RpcError> {
        match self.get(index, name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // Python clients sometimes pass 0/1.
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().map(|n| n != 0)),
            Some(_) => Err(RpcError::invalid_params(format!(
                "{name} must be a boolean"
            ))),
        }
    }

    /// Whether parameter `name` was given at all (for updateSession's `expire`).
    pub(crate) fn raw(&self, index: usize, name: &str) -> Option<&'a Value> {
        self.get(index, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positional_and_named_read_alike() {
        let pos = json!(["tok", "/a", true]);
        let named = json!({"token": "tok", "path": "/a", "detail": true});
        for v in [&pos, &named] {
            let p = Params::new(Some(v)).expect("valid params");
            assert_eq!(p.required_str(0, "token").ok(), Some("tok"));
            assert_eq!(p.str(1, "path").ok(), Some(Some("/a")));
            assert_eq!(p.bool(2, "detail").ok(), Some(Some(true)));
            assert_eq!(p.int(3, "other").ok(), Some(None));
        }
        let p = Params::new(Some(&pos)).expect("valid params");
        assert!(p.int(0, "token").is_err());
        assert!(Params::new(Some(&json!("x"))).is_err());
    }
}
