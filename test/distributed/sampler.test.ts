import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchPositions } from '../../src/data/samplers.js';
import { ClipLoader, type ClipBatch } from '../../src/data/loader.js';
import { tinyData } from '../train/fixture.js';
import { loadDataset } from '../../src/data/formats/index.js';

test('batchPositions: every position of an epoch exactly once across the ranks; global batch b of W ranks is batch b of one process with W× the batch', () => {
  for (const count of [0, 1, 7, 16, 17, 100]) {
    for (const world of [1, 2, 3, 4]) {
      for (const batch of [1, 3, 4]) {
        for (const dropLast of [true, false]) {
          const perRank = Array.from({ length: world }, (_, rank) => batchPositions(count, batch, dropLast, { rank, world }));
          const seen = perRank.flat(2).sort((a, b) => a - b);
          const full = Math.floor(count / (batch * world)) * batch * world;
          const expected = Array.from({ length: dropLast ? full : count }, (_, i) => i);
          assert.deepEqual(seen, expected, `count ${count}, world ${world}, batch ${batch}, dropLast ${dropLast}`);
          if (dropLast) {
            // Equal batch counts on every rank (collectives pair up), each batch full.
            for (const batches of perRank) assert.ok(batches.every((b) => b.length === batch) && batches.length === perRank[0]!.length);
            const single = batchPositions(count, batch * world, true);
            single.forEach((positions, b) => assert.deepEqual(perRank.map((r) => r[b]!).flat().sort((x, y) => x - y), positions));
          }
        }
      }
    }
  }
  assert.throws(() => batchPositions(10, 2, true, { rank: 2, world: 2 }), /rank 2 of 2 is not a valid shard/);
});

test('a sharded loader: each epoch\'s shuffled videos split across 2 ranks without overlap, the same clips as one loader of twice the batch', async () => {
  const data = await tinyData();
  const samples = (await loadDataset(data.root, 'ucf101')).splits.train1!;
  const make = (batchSize: number, shard?: { rank: number; world: number }) => ClipLoader.create({
    samples, source: { kind: 'cache', dir: data.cache }, mode: 'train', batchSize, frames: 4, size: 32, workers: 0, seed: 5, flip: true,
    ...(shard ? { shard } : {}),
  });
  const loaders = [await make(4, { rank: 0, world: 2 }), await make(4, { rank: 1, world: 2 }), await make(8)];
  try {
    for (const epoch of [0, 1]) {
      const batches: ClipBatch[][] = [];
      for (const loader of loaders) {
        const list: ClipBatch[] = [];
        for await (const batch of loader.epoch(epoch)) list.push(batch);
        batches.push(list);
      }
      const [rank0, rank1, single] = batches as [ClipBatch[], ClipBatch[], ClipBatch[]];
      assert.equal(rank0.length, single.length);
      const videos = (list: ClipBatch[]) => list.flatMap((b) => [...b.videoIndices]);
      const both = [...videos(rank0), ...videos(rank1)];
      assert.equal(new Set(both).size, both.length, 'a video on both ranks');
      assert.deepEqual([...both].sort((a, b) => a - b), videos(single).sort((a, b) => a - b));
      // Batch by batch: the two ranks' clips are the single loader's, pixel for pixel (augmentation keyed by position).
      for (let b = 0; b < single.length; b++) {
        const clipSize = single[b]!.data.length / single[b]!.labels.length;
        const byVideo = new Map<number, string>();
        single[b]!.videoIndices.forEach((v, i) => byVideo.set(v, Buffer.from(single[b]!.data.buffer, single[b]!.data.byteOffset + i * clipSize * 4, clipSize * 4).toString('base64')));
        for (const part of [rank0[b]!, rank1[b]!]) {
          part.videoIndices.forEach((v, i) => {
            assert.equal(Buffer.from(part.data.buffer, part.data.byteOffset + i * clipSize * 4, clipSize * 4).toString('base64'), byVideo.get(v), `epoch ${epoch} batch ${b} video ${v}`);
          });
        }
      }
    }
  } finally {
    await Promise.all(loaders.map((l) => l.close()));
  }
});
