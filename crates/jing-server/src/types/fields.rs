//! Reading request fields by hand from a parsed JSON object, so that every error names the exact
//! field (`param`, e.g. `messages[2].content`) and says what was expected. `null` counts as
//! absent everywhere: clients send explicit nulls for parameters they do not set.

use serde_json::{Map, Value};

use crate::errors::ApiError;

/// A JSON object with the path that leads to it (`""` for the request body).
#[derive(Clone, Copy)]
pub struct Fields<'a, 'p> {
    map: &'a Map<String, Value>,
    prefix: &'p str,
}

/// What a JSON value is, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `prefix.key`, or `key` at the top.
pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `prefix[i]`.
pub fn index(prefix: &str, i: usize) -> String {
    format!("{prefix}[{i}]")
}

impl<'a, 'p> Fields<'a, 'p> {
    pub fn new(map: &'a Map<String, Value>, prefix: &'p str) -> Self {
        Fields { map, prefix }
    }

    /// The path of `key` inside this object.
    pub fn path(&self, key: &str) -> String {
        join(self.prefix, key)
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> ApiError {
        let path = self.path(key);
        ApiError::invalid(
            path.clone(),
            format!("`{path}` must be {expected}, got {}.", kind(got)),
        )
    }

    /// The value of `key`; `None` when absent or `null`.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn string(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub fn required_string(&self, key: &str) -> Result<&'a str, ApiError> {
        self.string(key)?.ok_or_else(|| {
            let path = self.path(key);
            ApiError::invalid(path.clone(), format!("`{path}` is required."))
        })
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "true or false", v)),
        }
    }

    /// A number in `[min, max]`.
    pub fn number(&self, key: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if (min..=max).contains(&x) {
                    Ok(Some(x))
                } else {
                    let path = self.path(key);
                    Err(ApiError::invalid(
                        path.clone(),
                        format!("`{path}` must be between {min} and {max}, got {x}."),
                    ))
                }
            }
            Some(v) => Err(self.wrong(key, "a number", v)),
        }
    }

    /// A whole number in `[min, max]` (`2.0` counts as whole, as in JavaScript clients).
    pub fn integer(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let path = self.path(key);
        let n = match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15)
                    .map(|x| x as i64)
            }),
            _ => None,
        };
        let out_of_range = |shown: String| {
            ApiError::invalid(
                path.clone(),
                format!("`{path}` must be an integer between {min} and {max}, got {shown}."),
            )
        };
        match (v, n) {
            (_, Some(n)) if (min..=max).contains(&n) => Ok(Some(n)),
            (_, Some(n)) => Err(out_of_range(n.to_string())),
            (Value::Number(x), None) => Err(out_of_range(x.to_string())),
            (v, None) => Err(self.wrong(key, "an integer", v)),
        }
    }

    pub fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong(key, "an array", v)),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.wrong(key, "an object", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn errors_name_the_field_and_what_was_expected() {
        let m = obj(json!({"t": "hot", "n": 2.5, "k": 3.0, "b": 1, "x": null}));
        let f = Fields::new(&m, "outer");
        let e = f.number("t", 0.0, 2.0).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("outer.t"));
        assert_eq!(e.message, "`outer.t` must be a number, got a string.");
        assert!(f
            .integer("n", 1, 4)
            .unwrap_err()
            .message
            .contains("got 2.5"));
        assert_eq!(f.integer("k", 1, 4).unwrap(), Some(3));
        assert!(f
            .integer("k", 4, 9)
            .unwrap_err()
            .message
            .contains("between 4 and 9, got 3"));
        assert!(f.boolean("b").is_err());
        assert_eq!(f.string("x").unwrap(), None);
        assert_eq!(f.string("missing").unwrap(), None);
        assert_eq!(
            f.required_string("missing").unwrap_err().message,
            "`outer.missing` is required."
        );
    }
}
