// Checks kernels/gemm_wgmma_layout.h, the layout arithmetic of the wgmma GEMM, against the definitions it relies
// on, written out here on their own (what nothing on this machine can run: the GPU's TMA and wgmma):
// - the PTX ISA's matrix descriptor bit fields, decoded from the 64-bit value;
// - TMA's 128-byte swizzle as a function of the shared-memory address (16-byte piece bits 4-6 XOR bits 7-9);
// - wgmma's K-major 128B canonical layout, Swizzle<3,4,3> o ((8,m),(T,2k)):((8T,SBO),(1,T)), read through the
//   decoded descriptor: every element every wgmma of every tile shape reads must be the one TMA wrote there;
// - the m64nNk16 float32 accumulator fragment, as CuTe's SM90 C layout composes it;
// - the k-partitions, the tile choice and the workspace bound.
// Prints one JSON object per check: {"check": name, "cases": n, "failures": f, "first": "what failed first"};
// test/native/gemm-wgmma-layout.test.ts runs it. The negative controls (a wrong stride, no swizzle) must fail.
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kernels/gemm_wgmma_layout.h"

using namespace kvsk::wg;

namespace {

struct Check {
  std::string name;
  long cases = 0, failures = 0;
  std::string first;
  template <typename What>  // what(): the case, in words (made only for the first failure)
  void expect(bool ok, const What& what) {
    ++cases;
    if (ok) return;
    if (failures++ == 0) first = what();
  }
  void print() const {
    std::printf("{\"check\":\"%s\",\"cases\":%ld,\"failures\":%ld,\"first\":\"%s\"}\n", name.c_str(), cases, failures,
                first.c_str());
  }
};

// The PTX ISA's descriptor fields.
struct Decoded {
  uint32_t start, lbo, sbo, baseOffset, swizzle, reserved;
};
Decoded decode(uint64_t d) {
  const uint64_t fields = 0x3FFFull | 0x3FFFull << 16 | 0x3FFFull << 32 | 0x7ull << 49 | 0x3ull << 62;
  return {static_cast<uint32_t>(d & 0x3FFF) << 4, static_cast<uint32_t>((d >> 16) & 0x3FFF) << 4,
          static_cast<uint32_t>((d >> 32) & 0x3FFF) << 4, static_cast<uint32_t>((d >> 49) & 7),
          static_cast<uint32_t>(d >> 62), static_cast<uint32_t>((d & ~fields) != 0)};
}

// Swizzle<3,4,3> on a byte address: what both TMA (CU_TENSOR_MAP_SWIZZLE_128B) and wgmma (mode 1) apply.
uint32_t swizzle128(uint32_t addr) { return addr ^ (((addr >> 7) & 7) << 4); }

// Shared memory as TMA leaves it after loading a box {64, rows} of 16-bit elements at `tileAddr`: each element
// tagged with its (row, k) so that a read says which element it found.
uint32_t tag(int row, int k) { return static_cast<uint32_t>(row) << 8 | static_cast<uint32_t>(k); }
void tmaWrite(std::vector<uint32_t>& smem, uint32_t tileAddr, int rowBase, int rows) {
  for (int r = 0; r < rows; ++r)
    for (int k = 0; k < kChunk; ++k) smem[swizzle128(tileAddr + r * 128 + k * 2) / 2] = tag(rowBase + r, k);
}

// The element wgmma reads at row r (A: m; B: n), column c (k within the k16 slice) of an operand described by d,
// by the K-major canonical layout of its swizzle mode (128B, or none: then 8 x 16-byte rows per core matrix).
uint32_t wgmmaRead(const std::vector<uint32_t>& smem, uint64_t d, int r, int c) {
  const Decoded f = decode(d);
  if (f.swizzle == 1) return smem[swizzle128(f.start + (r % 8) * 128 + (r / 8) * f.sbo + c * 2) / 2];
  // No swizzle, K-major: ((8,m),(T,2k)):((1T,SBO),(1,LBO)) — 16-byte rows, LBO between the two k8 halves.
  return smem[(f.start + (r % 8) * 16 + (r / 8) * f.sbo + (c / 8) * f.lbo + (c % 8) * 2) / 2];
}

std::string at(const char* what, int tile, int stage, int wg, int sub, int j, int r, int c) {
  return std::string(what) + " tile " + std::to_string(tile) + " stage " + std::to_string(stage) + " wg " +
         std::to_string(wg) + " sub " + std::to_string(sub) + " j " + std::to_string(j) + " r " + std::to_string(r) +
         " c " + std::to_string(c);
}

// Every stage of every tile shape: TMA writes the ring as the kernel lays it out (at a 1024-aligned start past some
// static shared memory), and each wgmma the kernel issues reads, through the descriptor it computes, exactly the
// elements of its rows and k16 slice. `mutate` alters the descriptor (the negative controls).
void ringCheck(Check& ch, uint64_t (*mutate)(uint64_t)) {
  for (int tile : {kTile64x128, kTile128x128, kTile128x256}) {
    const Geometry g = geometry(tile);
    const uint32_t ring = 3 * kAtomBytes;  // the kernel's aligned start (its static barriers sit below)
    std::vector<uint32_t> smem((ring + g.stages * g.stageBytes()) / 2 + 64, 0xFFFFFFFFu);
    for (int s = 0; s < g.stages; ++s) {
      const uint32_t x = ring + s * g.stageBytes(), w = x + g.bm() * kRowBytes;
      tmaWrite(smem, x, 1000 * s, g.bm());         // X rows of stage s
      tmaWrite(smem, w, 1000 * s + 500, g.bn());   // W rows of stage s
    }
    const uint64_t desc0 = descriptor(ring);
    for (int s = 0; s < g.stages; ++s) {
      const uint32_t x = s * g.stageBytes(), w = x + g.bm() * kRowBytes;  // offsets from the ring, as the kernel's
      for (int wg = 0; wg < g.consumers; ++wg)
        for (int sub = 0; sub < g.subN; ++sub)
          for (int j = 0; j < kKSteps; ++j) {
            const uint64_t a = mutate(desc0 + ((x + aSliceOffset(wg, j)) >> 4));
            const uint64_t b = mutate(desc0 + ((w + bSliceOffset(sub, j)) >> 4));
            for (int r = 0; r < kMmaM; ++r)
              for (int c = 0; c < kMmaK; ++c)
                ch.expect(wgmmaRead(smem, a, r, c) == tag(1000 * s + wg * kMmaM + r, 16 * j + c), [&] { return std::string(at("A", tile, s, wg, sub, j, r, c)); });
            for (int n = 0; n < kMmaN; ++n)
              for (int c = 0; c < kMmaK; ++c)
                ch.expect(wgmmaRead(smem, b, n, c) == tag(1000 * s + 500 + sub * kMmaN + n, 16 * j + c), [&] { return std::string(at("B", tile, s, wg, sub, j, n, c)); });
          }
    }
  }
}

uint64_t same(uint64_t d) { return d; }
uint64_t sbo512(uint64_t d) { return (d & ~(0x3FFFull << 32)) | (uint64_t)(512 >> 4) << 32; }
uint64_t noSwizzle(uint64_t d) { return d & ~(3ull << 62); }

}  // namespace

int main() {
  {
    Check ch{"descriptor fields"};
    for (uint32_t addr = 0; addr < 232448; addr += 1024)
      for (uint32_t off : {0u, 32u, 64u, 96u, 8192u, 16384u + 96u}) {
        const Decoded f = decode(descriptor(addr + off));
        const std::string where = "address " + std::to_string(addr + off);
        ch.expect(f.start == addr + off, [&] { return std::string(where + ": start"); });
        ch.expect(f.lbo == 16, [&] { return std::string(where + ": leading byte offset encoded 1 (unused, assumed 1)"); });
        ch.expect(f.sbo == 1024, [&] { return std::string(where + ": stride byte offset 1024"); });
        ch.expect(f.baseOffset == 0, [&] { return std::string(where + ": base offset 0"); });
        ch.expect(f.swizzle == 1, [&] { return std::string(where + ": 128-byte swizzle"); });
        ch.expect(f.reserved == 0, [&] { return std::string(where + ": reserved bits"); });
        // The kernel adds byte offsets >> 4 to the descriptor of the ring's start: the same descriptor.
        ch.expect(descriptor(addr) + (off >> 4) == descriptor(addr + off), [&] { return std::string(where + ": descriptor arithmetic"); });
      }
    ch.print();
  }
  {
    Check ch{"tma swizzle"};  // the header's closed form of a 1024-aligned box, against the address function
    for (uint32_t base : {0u, 1024u, 7u * 1024u})
      for (int r = 0; r < 256; ++r)
        for (int b = 0; b < 128; b += 2)
          ch.expect(base + swizzledByte(r, b) == swizzle128(base + r * 128 + b), [&] { return std::string("row " + std::to_string(r) + " byte " + std::to_string(b)); });
    ch.print();
  }
  {
    Check ch{"wgmma reads what tma wrote"};
    ringCheck(ch, same);
    ch.print();
  }
  {
    Check ch{"control: stride byte offset 512"};
    ringCheck(ch, sbo512);
    ch.print();
  }
  {
    Check ch{"control: no swizzle"};
    ringCheck(ch, noSwizzle);
    ch.print();
  }
  {
    Check ch{"accumulator fragment"};
    // CuTe's SM90 64xN float32 C layout: thread (t0 in 4, t1 in 8, t2 in 4) x value (v0 in 2, v1 in 2, v2 in N/8)
    // -> (m, n) with strides m: t1 1, t2 16, v1 8; n: t0 2, v0 1, v2 8.
    std::set<std::pair<int, int>> seen;
    for (int warp = 0; warp < 4; ++warp)
      for (int lane = 0; lane < 32; ++lane)
        for (int i = 0; i < kMmaN / 2; ++i) {
          const int t0 = lane % 4, t1 = lane / 4, v0 = i % 2, v1 = (i / 2) % 2, v2 = i / 4;
          const int m = t1 + 16 * warp + 8 * v1, n = 2 * t0 + v0 + 8 * v2;
          ch.expect(accRow(warp, lane, i) == m && accCol(lane, i) == n, [&] { return std::string("warp " + std::to_string(warp) + " lane " + std::to_string(lane) + " reg " + std::to_string(i)); });
          seen.insert({accRow(warp, lane, i), accCol(lane, i)});
        }
    ch.expect(seen.size() == (size_t)kMmaM * kMmaN, [&] { return std::string("the 128 threads' fragments cover 64 x 128 once"); });
    ch.print();
  }
  {
    Check ch{"tile geometry"};
    for (int tile : {kTile64x128, kTile128x128, kTile128x256}) {
      const Geometry g = geometry(tile);
      const std::string t = "tile " + std::to_string(tile);
      ch.expect(g.stageBytes() % kAtomBytes == 0 && g.bm() * kRowBytes % kAtomBytes == 0, [&] { return std::string(t + ": tiles on swizzle atoms"); });
      ch.expect(g.bm() <= 256 && g.bn() <= 256, [&] { return std::string(t + ": TMA boxes of at most 256 rows"); });
      // 227 KB per CTA at most, 228 KB per SM with 1 KB reserved per CTA and ~256 bytes of static barriers.
      ch.expect(g.smemBytes() <= 232448 && g.ctasPerSm * (g.smemBytes() + 1024 + 256) <= 233472, [&] { return std::string(t + ": shared memory fits"); });
      ch.expect(g.consumerRegs() <= 256 && g.consumerRegs() >= g.entryRegs(), [&] { return std::string(t + ": setmaxnreg within 256, never fewer"); });
      ch.expect(128 * Geometry::kProducerRegs + 128 * g.consumers * g.consumerRegs() <= g.entryRegs() * g.threads(), [&] { return std::string(t + ": the registers setmaxnreg hands out are the CTA's"); });
      ch.expect(g.consumerRegs() >= 64 * g.subN + (g.subN == 1 ? 64 : 0) + 24, [&] { return std::string(t + ": accumulators (and the running total) fit with room to spare"); });
    }
    ch.print();
  }
  {
    Check ch{"k-partitions"};
    for (int k = 8; k <= 20000; k += k < 600 ? 8 : 232)
      for (int splits = 1; splits <= 40; ++splits) {
        const int chunks = chunksOf(k), pc = partChunksOf(k, splits), parts = partsOf(k, splits);
        const std::string w = "k " + std::to_string(k) + " splits " + std::to_string(splits);
        ch.expect(parts * pc >= chunks && (parts - 1) * pc < chunks, [&] { return std::string(w + ": partitions cover the chunks, none empty"); });
        ch.expect(parts <= splits, [&] { return std::string(w + ": no more partitions than asked for"); });
        ch.expect(partsOf(k, parts) == parts && partChunksOf(k, parts) == pc, [&] { return std::string(w + ": the count it makes asks for itself"); });
      }
    // Llama-3-8B on an H200 (132 SMs): qkv, o, gate/up, down, lm_head.
    const int want[][3] = {{6144, 4096, 5}, {4096, 4096, 8}, {28672, 4096, 1}, {4096, 14336, 8}, {128256, 4096, 1}};
    for (const auto& s : want)
      ch.expect(splitsFor(s[0], s[1], 132) == s[2], [&] { return std::string("splitsFor(" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ")"); });
    ch.print();
  }
  {
    Check ch{"choice"};
    const int shapes[][2] = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}, {193, 64}, {4097, 4104}};
    for (const auto& s : shapes) {
      const int n = s[0], k = s[1], splits = splitsFor(n, k, 132), parts = partsOf(k, splits);
      const size_t ws = workspaceBytes(8192, n, k, splits, 132);
      for (int m = 1; m <= 8192; m += m < 600 ? 1 : 97)
        for (int tile = 0; tile <= kTile128x256; ++tile)
          for (int split = -1; split <= 1; ++split) {
            const Choice c = choose(m, n, k, splits, tile, split, true, ws, 132);
            const std::string w = "n " + std::to_string(n) + " m " + std::to_string(m) + " tile " + std::to_string(tile) +
                                  " split " + std::to_string(split);
            ch.expect(c.tile >= kTile64x128 && c.tile <= kTile128x256, [&] { return std::string(w + ": a tile"); });
            ch.expect(!(c.tile == kTile128x256 && parts > 1 && !c.split), [&] { return std::string(w + ": 128 x 256 never walks several partitions"); });
            ch.expect(!c.split || (parts > 1 && splitBytes(m, n, parts) <= ws), [&] { return std::string(w + ": a split has its workspace"); });
            if (tile == 0 && split < 0) {
              const bool longK = k >= 8192;
              const int want = parts > 1 ? (m > 64 && m <= 128 && longK ? kTile128x256 : m <= 256 ? kTile64x128 : kTile128x128)
                                         : (m <= 64 ? kTile64x128 : kTile128x256);
              ch.expect(c.tile == want, [&] { return std::string(w + ": the automatic tile"); });
              ch.expect(c.split == (parts > 1 && splitWanted(c.tile, m, n, k, parts, 132)), [&] { return std::string(w + ": the workspace bound lets every automatic split run"); });
              ch.expect(!c.split || m <= (longK ? 128 : 16), [&] { return std::string(w + ": no automatic split beyond M = 16 (128 for K >= 8192)"); });
              if (n == 4096 && k == 14336 && m > 64 && m <= 128)
                ch.expect(c.split && c.tile == kTile128x256, [&] { return std::string(w + ": down_proj at M 65-128 splits on 128 x 256"); });
            }
            ch.expect(!choose(m, n, k, splits, tile, split, false, 0, 132).split, [&] { return std::string(w + ": no workspace, no split"); });
          }
    }
    ch.print();
  }
  {
    Check ch{"tile order"};  // every CTA index a distinct tile, every tile some CTA
    for (int mTiles : {1, 3, 8, 9, 64, 65})
      for (int nTiles : {1, 7, 32, 501}) {
        std::set<std::pair<int, int>> seen;
        for (int id = 0; id < mTiles * nTiles; ++id) {
          int mt = -1, nt = -1;
          tileOf(id, mTiles, nTiles, mt, nt);
          ch.expect(mt >= 0 && mt < mTiles && nt >= 0 && nt < nTiles, [&] { return std::string("in range"); });
          seen.insert({mt, nt});
        }
        ch.expect(seen.size() == (size_t)mTiles * nTiles, [&] { return std::string(std::to_string(mTiles) + " x " + std::to_string(nTiles) + " covered"); });
      }
    ch.print();
  }
  return 0;
}
