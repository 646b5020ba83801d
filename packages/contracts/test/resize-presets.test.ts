import { DEFAULT_RESIZE_PRESETS, resolveResize } from '../src/resize-presets.ts';

const o = (resize: string, resizeWidth: number | null = null, resizeHeight: number | null = null) => ({ resize, resizeWidth, resizeHeight }) as Parameters<typeof resolveResize>[0];

test('presets resolve to the boxes of API.md §2.5', () => {
  expect(resolveResize(o('original'))).toBeUndefined();
  expect(resolveResize(o('website'))).toEqual({ width: 1920, fit: 'inside' });
  expect(resolveResize(o('email'))).toEqual({ width: 600, fit: 'inside' });
  expect(resolveResize(o('instagram'))).toEqual({ width: 1080, height: 1080, fit: 'cover' });
  expect(resolveResize(o('linkedin'))).toEqual({ width: 1200, height: 627, fit: 'cover' });
  expect(resolveResize(o('ecommerce'))).toEqual({ width: 2000, height: 2000, fit: 'inside' });
  expect(resolveResize(o('square'))).toEqual({ width: 1080, height: 1080, fit: 'cover' });
  expect(resolveResize(o('square', 300))).toEqual({ width: 300, height: 300, fit: 'cover' });
  expect(resolveResize(o('width', 640))).toEqual({ width: 640, fit: 'inside' });
  expect(resolveResize(o('height', null, 480))).toEqual({ height: 480, fit: 'inside' });
});

test('an operator override replaces a preset', () => {
  expect(resolveResize(o('email'), { ...DEFAULT_RESIZE_PRESETS, email: { width: 640, fit: 'inside' } })).toEqual({ width: 640, fit: 'inside' });
});
