//! Typed models to and from JavaScript values. The browser parses and writes
//! the JSON; each model says in a few lines which fields it reads and writes.
//!
//! Written by hand for size. Converting with `serde` cost far more than the
//! package's budget (32 KB gzipped for the `.wasm` and its glue, about 30 KB
//! before these models): `serde-wasm-bindgen` made the `.wasm` 59 KB gzipped,
//! largely `core`'s float and `Debug` formatting reached from its error
//! messages, and a `serde` deserializer written for `JsValue` without
//! messages still 39 KB, the derived visitors themselves. `cargo xtask bench`
//! reports the size.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// A value of another shape than the model's. The caller says what was not
/// understood.
#[derive(Debug)]
pub struct Mismatch;

/// A model read from a JavaScript value.
pub trait FromJs: Sized {
    fn from_js(value: JsValue) -> Result<Self, Mismatch>;
}

/// A model written as a plain JavaScript value.
pub trait ToJs {
    fn to_js(&self) -> JsValue;
}

impl<T: FromJs> FromJs for Vec<T> {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        if !Array::is_array(&value) {
            return Err(Mismatch);
        }
        let array = Array::from(&value);
        let mut items = Vec::with_capacity(array.length() as usize);
        for item in array.iter() {
            items.push(T::from_js(item)?);
        }
        Ok(items)
    }
}

impl<T: ToJs> ToJs for [T] {
    fn to_js(&self) -> JsValue {
        let array = Array::new();
        for item in self {
            array.push(&item.to_js());
        }
        array.into()
    }
}

impl<T: ToJs> ToJs for Vec<T> {
    fn to_js(&self) -> JsValue {
        self.as_slice().to_js()
    }
}

/// A value passed on as it is (a function's input and output, an upstream's status).
impl FromJs for JsValue {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        Ok(value)
    }
}

impl ToJs for JsValue {
    fn to_js(&self) -> JsValue {
        self.clone()
    }
}

impl FromJs for String {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        value.as_string().ok_or(Mismatch)
    }
}

impl ToJs for String {
    fn to_js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl FromJs for bool {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        value.as_bool().ok_or(Mismatch)
    }
}

impl<T: ToJs> ToJs for Option<T> {
    fn to_js(&self) -> JsValue {
        self.as_ref().map_or(JsValue::NULL, T::to_js)
    }
}

/// Names and string values: a page's `params`, a failure's `fields`.
#[derive(Default)]
pub struct TextMap(pub Vec<(String, String)>);

impl FromJs for TextMap {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        if !is_record(&value) {
            return Err(Mismatch);
        }
        let mut map = Vec::new();
        for pair in Object::entries(value.unchecked_ref()).iter() {
            let pair = Array::from(&pair);
            map.push((String::from_js(pair.get(0))?, String::from_js(pair.get(1))?));
        }
        Ok(TextMap(map))
    }
}

impl ToJs for TextMap {
    fn to_js(&self) -> JsValue {
        let object = Object::new();
        for (name, value) in &self.0 {
            let _ = Reflect::set(&object, &name.into(), &value.into());
        }
        object.into()
    }
}

fn is_record(value: &JsValue) -> bool {
    value.is_object() && !Array::is_array(value) && !value.is_function()
}

/// The properties of a JavaScript object, read one by one.
pub struct Record(JsValue);

impl Record {
    pub fn new(value: JsValue) -> Result<Record, Mismatch> {
        if is_record(&value) {
            Ok(Record(value))
        } else {
            Err(Mismatch)
        }
    }

    fn get(&self, name: &str) -> JsValue {
        Reflect::get(&self.0, &name.into()).unwrap_or(JsValue::UNDEFINED)
    }

    /// A required property.
    pub fn read<T: FromJs>(&self, name: &str) -> Result<T, Mismatch> {
        T::from_js(self.get(name))
    }

    /// A property that may be absent or `null`.
    pub fn optional<T: FromJs>(&self, name: &str) -> Result<Option<T>, Mismatch> {
        let value = self.get(name);
        if value.is_null() || value.is_undefined() {
            Ok(None)
        } else {
            T::from_js(value).map(Some)
        }
    }

    pub fn flag(&self, name: &str) -> Result<bool, Mismatch> {
        self.get(name).as_bool().ok_or(Mismatch)
    }
}

/// A plain object with these properties, in this order.
pub fn object(properties: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (name, value) in properties {
        let _ = Reflect::set(&object, &(*name).into(), value);
    }
    object.into()
}

/// A JavaScript value read as `T`; `None` when it has another shape.
pub fn from_js<T: FromJs>(value: JsValue) -> Option<T> {
    T::from_js(value).ok()
}
