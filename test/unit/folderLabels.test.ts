/** Classify Folder's pure parts: the folder-label rule, label matching, RFC 4180 CSV. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classFolderOf, folderLabels, sameLabel } from '../../server/folderLabels';
import { csvField, folderAccuracy, predictionsCsv } from '../../server/classifyFolder';
import type { FolderPrediction } from '../../common/workerRequests';

test('the class folder is the first component, or the second under train/, val/ or test/', () => {
  assert.equal(classFolderOf('cat/1.png'), 'cat');
  assert.equal(classFolderOf('cat/kittens/2.png'), 'cat', 'nested folders belong to their class');
  assert.equal(classFolderOf('train/cat/1.png'), 'cat');
  assert.equal(classFolderOf('val/dog/a/b.png'), 'dog');
  assert.equal(classFolderOf('test/dog/1.png'), 'dog');
  assert.equal(classFolderOf('test/1.png'), undefined, 'loose in a split folder');
  assert.equal(classFolderOf('1.png'), undefined);
  assert.equal(classFolderOf('Train/cat/1.png'), 'Train', 'only the lower-case split names are splits');
});

test('labels only when the folder looks like a class-folder dataset', () => {
  assert.deepEqual(folderLabels(['cat/1.png', 'dog/2.png', 'dog/x/3.png']), ['cat', 'dog', 'dog']);
  assert.deepEqual(folderLabels(['train/cat/1.png', 'train/dog/2.png', 'val/cat/3.png']), ['cat', 'dog', 'cat']);
  // A loose image at the root: a photo folder with sub-albums, not a dataset.
  assert.deepEqual(folderLabels(['cat/1.png', 'dog/2.png', 'holiday.png']), [undefined, undefined, undefined]);
  // One class folder (an album), or only loose images: nothing to compare with.
  assert.deepEqual(folderLabels(['album/1.png', 'album/2.png']), [undefined, undefined]);
  assert.deepEqual(folderLabels(['1.png', '2.png']), [undefined, undefined]);
  assert.deepEqual(folderLabels(['train/cat/1.png', 'test/2.png']), [undefined, undefined]);
  assert.deepEqual(folderLabels([]), []);
});

test('labels match across case, spaces, underscores and punctuation', () => {
  assert.ok(sameLabel('ankle_boot', 'Ankle boot'));
  assert.ok(sameLabel('T-shirt_top', 'T-shirt/top'));
  assert.ok(sameLabel('tabby', 'Tabby'));
  assert.ok(!sameLabel('shirt', 'T-shirt/top'));
  assert.ok(!sameLabel('cat', 'dog'));
});

test('CSV fields are quoted per RFC 4180, rows end with CRLF', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  const p: FolderPrediction = {
    file: 'a,b/x.png',
    folderLabel: 'a,b',
    predicted: 'A "b"',
    confidence: 0.5,
    agrees: false,
    top: [
      { label: 'A "b"', index: 0, score: 0.5 },
      { label: 'c', index: 1, score: 0.25 },
    ],
  };
  assert.equal(
    predictionsCsv([p, { ...p, folderLabel: undefined, agrees: undefined }]),
    [
      'file,folder_label,predicted,confidence,agrees,top_k',
      '"a,b/x.png","a,b","A ""b""",0.500000,false,"A ""b"":0.500000;c:0.250000"',
      '"a,b/x.png",,"A ""b""",0.500000,,"A ""b"":0.500000;c:0.250000"',
      '',
    ].join('\r\n'),
  );
});

test('accuracy counts only labelled images', () => {
  const p = (agrees?: boolean): FolderPrediction => ({ file: 'x', predicted: 'a', confidence: 1, agrees, top: [] });
  assert.deepEqual(folderAccuracy([p(true), p(false), p(true), p(undefined)]), { correct: 2, labelled: 3 });
  assert.equal(folderAccuracy([p(undefined)]), undefined);
});
