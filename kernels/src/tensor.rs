use std::fmt;

/// Element type of a tensor. Complex values are stored interleaved (re, im) as two f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    C64,
}

impl Dtype {
    pub fn size_bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::C64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::C64 => "complex64",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense row-major tensor living on one backend; `S` is that backend's storage.
#[derive(Debug)]
pub struct Tensor<S> {
    shape: Vec<usize>,
    dtype: Dtype,
    pub(crate) storage: S,
}

impl<S> Tensor<S> {
    pub(crate) fn new(shape: Vec<usize>, dtype: Dtype, storage: S) -> Self {
        Self {
            shape,
            dtype,
            storage,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn size_bytes(&self) -> u64 {
        (self.len() * self.dtype.size_bytes()) as u64
    }

    /// The same elements under another shape with as many of them (no copy: the layout is row-major).
    pub fn reshape(self, shape: &[usize]) -> crate::Result<Self> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(crate::KernelError::Shape {
                op: "reshape",
                expected: format!(
                    "{} elements, as {shape:?} has",
                    shape.iter().product::<usize>()
                ),
                found: self.shape,
            });
        }
        Ok(Self {
            shape: shape.to_vec(),
            ..self
        })
    }
}
