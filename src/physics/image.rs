//! The one complex image type of the physics and the data: an object or a probe, row-major complex64,
//! as the NPZ files hold them. (The metrics work on f64 copies, `eval::image::Image`.)

use ndarray::{Array2, ArrayView2, ShapeError};
use ptycho_kernels::Complex32;

#[derive(Clone, Debug, PartialEq)]
pub struct ComplexImage {
    pub rows: usize,
    pub cols: usize,
    /// rows · cols values, row-major.
    pub data: Vec<Complex32>,
}

/// (rows, cols) of the smallest object that holds every N x N patch centred at the positions
/// (x = column, y = row): the extent of a reconstruction that has no object to start from.
pub fn covering_shape(xcoords: &[f64], ycoords: &[f64], n: usize) -> (usize, usize) {
    let half = (n / 2) as f64;
    let extent = |v: &[f64]| (v.iter().copied().fold(0.0, f64::max) + half).ceil() as usize + 1;
    (extent(ycoords), extent(xcoords))
}

impl ComplexImage {
    pub fn new(rows: usize, cols: usize, data: Vec<Complex32>) -> Self {
        assert_eq!(data.len(), rows * cols, "a {rows} x {cols} image");
        Self { rows, cols, data }
    }

    pub fn filled(rows: usize, cols: usize, value: Complex32) -> Self {
        Self::new(rows, cols, vec![value; rows * cols])
    }

    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The image as an ndarray view, without a copy.
    pub fn view(&self) -> ArrayView2<'_, Complex32> {
        ArrayView2::from_shape((self.rows, self.cols), &self.data)
            .expect("rows · cols values, row-major")
    }

    /// Taken from an ndarray array of any memory order, as row-major values (moved when the array is
    /// already standard row-major).
    pub fn from_array(array: Array2<Complex32>) -> Self {
        let (rows, cols) = array.dim();
        let data = if array.is_standard_layout() {
            let (data, _offset) = array.into_raw_vec_and_offset();
            data
        } else {
            array.iter().copied().collect()
        };
        Self::new(rows, cols, data)
    }

    /// The image as an owned ndarray array (the values are moved, not copied).
    pub fn into_array(self) -> Result<Array2<Complex32>, ShapeError> {
        Array2::from_shape_vec((self.rows, self.cols), self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_round_trips_through_ndarray_in_row_major_order() {
        let values: Vec<Complex32> = (0..6)
            .map(|i| Complex32::new(i as f32, -(i as f32)))
            .collect();
        let image = ComplexImage::new(2, 3, values.clone());
        assert_eq!(image.view()[[1, 0]], values[3]);
        let array = image.clone().into_array().unwrap();
        assert_eq!(array[[0, 2]], values[2]);
        assert_eq!(ComplexImage::from_array(array.clone()), image);
        // A transposed (column-major) array is read in its logical order.
        let transposed = ComplexImage::from_array(array.reversed_axes());
        assert_eq!(transposed.shape(), [3, 2]);
        assert_eq!(transposed.data[1], values[3]);
    }
}
