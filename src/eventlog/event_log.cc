#include "eventlog/event_log.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/source.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/sst_file_writer.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/write_buffer_manager.h"
#include "spdlog/spdlog.h"

namespace okrd::eventlog {
namespace {

enum Cf {
  kDefault = 0,
  kEvents,
  kDedup,
  kOffsets,
  kRejected,
  kSnapshots,
  kMeta,
  kAmendments,
  kLayout,
  kBlocks,
  kCfCount
};
const char* const kCfNames[] = {
    "default",   "events", "dedup",      "offsets", "rejected",
    "snapshots", "meta",   "amendments", "layout",  "event_blocks"};
// Full id tables waiting for their runs to be written, at most; appends
// wait beyond (about 13 MB per table of 32-character ids at the default 200k).
constexpr size_t kMaxUnwrittenTables = 4;
// A block of event records is closed once it holds this many bytes: a
// batch is a few dozen RocksDB records instead of one per event, and
// reading one event reads at most a block.
constexpr size_t kBlockBytes = 32 << 10;
const char kIdIndexCoveredKey[] = "id_index_covered";
// Runs of the id index are written here, then moved into RocksDB.
const char kRunPrefix[] = "id-run-";

const char kLastSequenceKey[] = "last_sequence";
const char kLastRejectedKey[] = "last_rejected_sequence";
const char kCounterPrefix[] = "counter/";
// pcounter/<topic> NUL <partition>/<outcome>/<reason>
const char kPartitionCounterPrefix[] = "pcounter/";
// first/<topic> NUL <partition>
const char kFirstOffsetPrefix[] = "first/";

std::string EncodeU64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

uint64_t DecodeU64(absl::string_view in) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < in.size(); ++i) {
    v = (v << 8) | static_cast<uint8_t>(in[i]);
  }
  return v;
}

std::string OffsetKey(const PartitionKey& key) {
  return absl::StrCat(key.first, absl::string_view("\0", 1), key.second);
}

std::string CounterKeyString(const CounterKey& key) {
  return absl::StrCat(kCounterPrefix, key.first, "/", key.second);
}

std::string PartitionCounterKeyString(const PartitionKey& partition,
                                      const CounterKey& key) {
  return absl::StrCat(kPartitionCounterPrefix, OffsetKey(partition), "/",
                      key.first, "/", key.second);
}

// Parses "topic NUL partition" at the start of `in`, and returns the rest.
std::optional<std::pair<PartitionKey, absl::string_view>> ParsePartition(
    absl::string_view in) {
  const size_t nul = in.find('\0');
  if (nul == absl::string_view::npos) return std::nullopt;
  const size_t end = std::min(in.find('/', nul), in.size());
  int32_t partition = 0;
  if (!absl::SimpleAtoi(in.substr(nul + 1, end - nul - 1), &partition)) {
    return std::nullopt;
  }
  return std::pair{PartitionKey(std::string(in.substr(0, nul)), partition),
                   in.substr(std::min(end + 1, in.size()))};
}

// Counts each message of a batch under its source partition. Messages of a
// batch come in runs per partition, so the last partition is kept at hand.
class PartitionTally {
 public:
  explicit PartitionTally(
      std::map<PartitionKey, std::map<CounterKey, uint64_t>>* counters)
      : counters_(counters) {}
  void Add(const okrd::v1::SourcePosition& p, absl::string_view outcome,
           absl::string_view reason) {
    if (!FromKafka(p)) return;  // imported
    if (last_ == nullptr || p.partition() != last_partition_ ||
        p.topic() != last_topic_ || outcome != last_outcome_ ||
        reason != last_reason_) {
      last_topic_ = p.topic();
      last_partition_ = p.partition();
      last_outcome_ = std::string(outcome);
      last_reason_ = std::string(reason);
      last_ = &(*counters_)[{p.topic(), p.partition()}]
                           [{std::string(outcome), std::string(reason)}];
    }
    ++*last_;
  }

 private:
  std::map<PartitionKey, std::map<CounterKey, uint64_t>>* counters_;
  uint64_t* last_ = nullptr;
  std::string last_topic_;
  int32_t last_partition_ = 0;
  std::string last_outcome_;
  std::string last_reason_;
};

// RocksDB's info log, into okrd's log lines.
class SpdLogger final : public rocksdb::Logger {
 public:
  SpdLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[1024];
    std::vsnprintf(line, sizeof(line), format, ap);
    // The id index's runs come from SstFileWriter, which RocksDB 7.8 gives
    // no unique id to track; it says so once per open of a log that has one.
    if (std::strstr(line, "opened without unique ID to verify") != nullptr) {
      return;
    }
    // One line per event, as okrd's own.
    for (char* c = line; *c != '\0'; ++c) {
      if (*c == '\n') *c = ' ';
    }
    spdlog::log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL
                    ? spdlog::level::err
                    : spdlog::level::warn,
                "rocksdb: {}", line);
  }
};

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", s.ToString()));
}

bool Amends(const okrd::v1::KpiEvent& event) {
  return event.kind() == okrd::v1::CORRECTION ||
         event.kind() == okrd::v1::RETRACTION;
}

// Calls `fn` for the records of the block that starts at sequence `first`
// from sequence `from` on, until it returns false (then sets `*stopped`).
// False when the block cannot be read.
bool ReadBlock(absl::string_view block, uint64_t first, uint64_t from,
               const RawRecordFn& fn, bool* stopped) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(block.data()),
      static_cast<int>(block.size()));
  for (uint64_t sequence = first;
       in.CurrentPosition() < static_cast<int>(block.size()); ++sequence) {
    uint32_t size = 0;
    if (!in.ReadVarint32(&size) ||
        size > block.size() - static_cast<size_t>(in.CurrentPosition())) {
      return false;
    }
    const absl::string_view record =
        block.substr(static_cast<size_t>(in.CurrentPosition()), size);
    if (!in.Skip(static_cast<int>(size))) return false;
    if (sequence >= from && !fn(sequence, record)) {
      *stopped = true;
      return true;
    }
  }
  return true;
}

// Calls `fn` for the records of a sequence-keyed column family (`cf`, null
// when the log has none) from `from` on, in order, until it returns false
// (then sets `*stopped`). With `blocks`, each RocksDB record is a block of
// event records keyed by the first one's sequence.
absl::Status ReadRecords(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                         const rocksdb::ReadOptions& read, bool blocks,
                         uint64_t from, absl::string_view what,
                         const RawRecordFn& fn, bool* stopped) {
  if (cf == nullptr) return absl::OkStatus();
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read, cf));
  const std::string start = EncodeU64(from);
  if (blocks) {
    // The block that holds `from` starts at or before it.
    it->SeekForPrev(start);
    if (!it->Valid()) it->Seek(start);
  } else {
    it->Seek(start);
  }
  for (; it->Valid(); it->Next()) {
    const uint64_t key =
        DecodeU64(absl::string_view(it->key().data(), it->key().size()));
    const absl::string_view value(it->value().data(), it->value().size());
    if (!blocks) {
      if (!fn(key, value)) {
        *stopped = true;
        break;
      }
      continue;
    }
    if (!ReadBlock(value, key, from, fn, stopped)) {
      return absl::DataLossError(
          absl::StrCat("the block of ", what, "s at ", key, " does not parse"));
    }
    if (*stopped) break;
  }
  return FromRocks(it->status(), absl::StrCat("reading ", what, "s"));
}

// Bytes at the end of write-ahead log `path` that do not complete a
// record: an unfinished write, which RocksDB's recovery drops without a
// word (kTolerateCorruptedTailRecords). Walks the records' framing (32 KiB
// blocks of fragments: crc32c, 2-byte length, type, then 4 more header
// bytes for the recyclable types 5-8; a fragmented record runs FIRST,
// MIDDLE..., LAST) without checking checksums: damage inside a record
// fails the open anyway. Zeros after the last record are preallocated
// space, not a write.
uint64_t TornWalTail(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string wal{std::istreambuf_iterator<char>(in), {}};
  constexpr size_t kBlock = 32768;
  auto byte = [&](size_t i) { return static_cast<uint8_t>(wal[i]); };
  size_t pos = 0;
  size_t whole_end = 0;          // after the last complete record
  size_t data_end = wal.size();  // before the preallocated zeros
  bool inside = false;           // after a FIRST fragment, before its LAST
  while (pos < wal.size()) {
    const size_t left_in_block = kBlock - pos % kBlock;
    if (left_in_block < 7) {  // the block's zero trailer
      pos = std::min(pos + left_in_block, wal.size());
      if (!inside) whole_end = pos;
      continue;
    }
    if (pos + 7 > wal.size()) break;  // a header cut short
    const uint8_t type = byte(pos + 6);
    const size_t length = byte(pos + 4) | (size_t{byte(pos + 5)} << 8);
    if (type == 0 && length == 0) {
      if (wal.find_first_not_of('\0', pos) == std::string::npos) {
        data_end = pos;
      }
      break;
    }
    const bool recyclable = type >= 5 && type <= 8;
    const size_t header = recyclable ? 11 : 7;
    if (pos + header + length > wal.size()) break;  // a fragment cut short
    // FULL, FIRST, MIDDLE, LAST; other types are whole records.
    const uint8_t kind = recyclable ? type - 4 : type;
    inside = kind == 2 || kind == 3;
    pos += header + length;
    if (!inside) whole_end = pos;
  }
  return data_end > whole_end ? data_end - whole_end : 0;
}

// The newest write-ahead log of the log in `dir`, if any.
std::optional<std::filesystem::path> NewestWal(
    const std::filesystem::path& dir) {
  std::optional<std::filesystem::path> newest;
  uint64_t newest_number = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    uint64_t number = 0;
    if (!name.ends_with(".log") ||
        !absl::SimpleAtoi(name.substr(0, name.size() - 4), &number)) {
      continue;
    }
    if (!newest || number > newest_number) {
      newest = entry.path();
      newest_number = number;
    }
  }
  return newest;
}

// A scan reads the log once, front to back: read ahead, and keep its blocks
// out of the cache that serves the daemon's point lookups.
rocksdb::ReadOptions ScanOptions() {
  rocksdb::ReadOptions read;
  read.readahead_size = 4 << 20;
  read.fill_cache = false;
  return read;
}

// Snapshots are stored as one ingested table file each (see SnapshotEntry
// in snapshot.proto): they never pass through the memtables and the WAL,
// which would hold a copy of each until flushed and write it twice more.
const char kSnapshotFilePrefix[] = "snapshot-";
constexpr size_t kSnapshotChunkBytes = 1 << 20;

std::string SnapshotEntryKey(uint64_t sequence) {
  return absl::StrCat("m", EncodeU64(sequence));
}

std::string SnapshotChunkPrefix(uint64_t sequence) {
  return absl::StrCat("c", EncodeU64(sequence));
}

std::string SnapshotChunkKey(uint64_t sequence, uint32_t chunk) {
  std::string key = SnapshotChunkPrefix(sequence);
  for (int shift = 24; shift >= 0; shift -= 8) {
    key.push_back(static_cast<char>((chunk >> shift) & 0xff));
  }
  return key;
}

// Hands protobuf's serializer buffers of kSnapshotChunkBytes and puts each
// into `writer` as the next chunk once filled, so a snapshot is never whole
// in memory as bytes.
class ChunkOutputStream final
    : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  ChunkOutputStream(rocksdb::SstFileWriter* writer, uint64_t sequence)
      : writer_(writer), sequence_(sequence) {}

  bool Next(void** data, int* size) override {
    if (!Flush()) return false;
    buffer_.resize(kSnapshotChunkBytes);
    used_ = buffer_.size();
    *data = buffer_.data();
    *size = static_cast<int>(buffer_.size());
    return true;
  }
  void BackUp(int count) override { used_ -= static_cast<size_t>(count); }
  int64_t ByteCount() const override {
    return static_cast<int64_t>(bytes_ + used_);
  }

  // Puts what the last buffer holds.
  bool Flush() {
    if (used_ == 0 || !status_.ok()) return status_.ok();
    status_ = writer_->Put(SnapshotChunkKey(sequence_, chunks_),
                           rocksdb::Slice(buffer_.data(), used_));
    ++chunks_;
    bytes_ += used_;
    used_ = 0;
    return status_.ok();
  }
  const rocksdb::Status& status() const { return status_; }
  uint32_t chunks() const { return chunks_; }
  uint64_t bytes() const { return bytes_; }

 private:
  rocksdb::SstFileWriter* writer_;
  uint64_t sequence_;
  std::string buffer_;
  size_t used_ = 0;
  uint32_t chunks_ = 0;
  uint64_t bytes_ = 0;
  rocksdb::Status status_;
};

// Reads the chunks of one snapshot in order, straight from `it`'s blocks.
// complete() says whether every chunk the entry names was there.
class ChunkInputStream final
    : public google::protobuf::io::ZeroCopyInputStream {
 public:
  ChunkInputStream(rocksdb::Iterator* it, uint64_t sequence, uint32_t chunks)
      : it_(it), sequence_(sequence), chunks_(chunks) {}

  bool Next(const void** data, int* size) override {
    if (backed_up_ > 0) {
      *data = current_.data() + current_.size() - backed_up_;
      *size = static_cast<int>(backed_up_);
      bytes_ += backed_up_;
      backed_up_ = 0;
      return true;
    }
    if (next_chunk_ == chunks_) return false;
    const std::string key = SnapshotChunkKey(sequence_, next_chunk_);
    if (next_chunk_ == 0) {
      it_->Seek(key);
    } else {
      it_->Next();
    }
    if (!it_->Valid() || it_->key() != key) {
      return false;  // a chunk is missing: complete() says so
    }
    ++next_chunk_;
    current_ = it_->value();
    *data = current_.data();
    *size = static_cast<int>(current_.size());
    bytes_ += current_.size();
    return true;
  }
  void BackUp(int count) override {
    backed_up_ = static_cast<size_t>(count);
    bytes_ -= backed_up_;
  }
  bool Skip(int count) override {
    const void* data = nullptr;
    int size = 0;
    while (count > 0) {
      if (!Next(&data, &size)) return false;
      if (size > count) {
        BackUp(size - count);
        return true;
      }
      count -= size;
    }
    return true;
  }
  int64_t ByteCount() const override { return static_cast<int64_t>(bytes_); }

  bool complete() const { return next_chunk_ == chunks_ && backed_up_ == 0; }

 private:
  rocksdb::Iterator* it_;
  uint64_t sequence_;
  uint32_t chunks_;
  uint32_t next_chunk_ = 0;
  rocksdb::Slice current_;
  size_t backed_up_ = 0;
  uint64_t bytes_ = 0;
};

// Calls `fn` for raw records with their sequences, in order, until it
// returns false; returns what stopped it.
using RawRecordSource = std::function<absl::Status(const RawRecordFn& fn)>;

// Calls `fn` for the records `source` reads, parsed as `Record`, in order,
// until it returns false.
//
// Reading the log and folding it take about the same time, so they run as
// a pipeline: a reader thread copies batches of raw records out of RocksDB,
// and the calling thread parses each batch onto one arena (a parse then
// allocates by bumping a pointer) and hands the records to `fn`. At most
// kQueuedBatches wait between the two.
template <typename Record>
absl::Status Scan(const RawRecordSource& source, absl::string_view what,
                  const std::function<bool(const Record&)>& fn) {
  constexpr size_t kBatchRecords = 1024;
  constexpr size_t kQueuedBatches = 8;
  struct Batch {
    std::string bytes;           // the records' values, back to back
    std::vector<size_t> ends;    // where each one ends in `bytes`
    std::vector<uint64_t> keys;  // and its sequence
  };
  absl::Mutex mu;
  absl::CondVar changed;    // signalled on every change to what mu guards
  std::deque<Batch> queue;  // guarded by mu
  bool done = false;        // guarded by mu: the reader has finished
  bool stop = false;        // guarded by mu: the caller wants no more
  absl::Status status;      // the reader's, once done

  std::thread reader([&] {
    Batch batch;
    auto hand_over = [&]() {
      absl::MutexLock lock(&mu);
      while (queue.size() >= kQueuedBatches && !stop) changed.Wait(&mu);
      if (stop) return false;
      queue.push_back(std::move(batch));
      batch = Batch();
      changed.SignalAll();
      return true;
    };
    bool quit = false;
    absl::Status read = source([&](uint64_t key, absl::string_view value) {
      batch.bytes.append(value.data(), value.size());
      batch.ends.push_back(batch.bytes.size());
      batch.keys.push_back(key);
      if (batch.ends.size() == kBatchRecords && !hand_over()) quit = true;
      return !quit;
    });
    if (!quit && !batch.ends.empty()) hand_over();
    absl::MutexLock lock(&mu);
    status = std::move(read);
    done = true;
    changed.SignalAll();
  });

  absl::Status result;
  for (bool more = true; more;) {
    Batch batch;
    {
      absl::MutexLock lock(&mu);
      while (queue.empty() && !done) changed.Wait(&mu);
      if (queue.empty()) break;  // done, and nothing left
      batch = std::move(queue.front());
      queue.pop_front();
      changed.SignalAll();
    }
    google::protobuf::Arena arena;
    size_t begin = 0;
    for (size_t i = 0; more && i < batch.ends.size(); ++i) {
      Record* record = google::protobuf::Arena::CreateMessage<Record>(&arena);
      if (!record->ParseFromArray(batch.bytes.data() + begin,
                                  static_cast<int>(batch.ends[i] - begin))) {
        result = absl::DataLossError(
            absl::StrCat(what, " ", batch.keys[i], " does not parse"));
        more = false;
      } else {
        more = fn(*record);
      }
      begin = batch.ends[i];
    }
  }
  {
    absl::MutexLock lock(&mu);
    stop = true;
    changed.SignalAll();
  }
  reader.join();  // after which `status` is the reader's last word
  return result.ok() ? status : result;
}

// EventBytes(event), valid until the next call on this thread.
absl::string_view SerializeEvent(const okrd::v1::KpiEvent& event) {
  thread_local std::string scratch;
  const size_t size = event.ByteSizeLong();
  scratch.resize(size);
  if (event.attributes().empty()) {
    // Only a map field can serialize in more than one order; without one the
    // plain serialization is the deterministic one, and much cheaper.
    event.SerializeWithCachedSizesToArray(
        reinterpret_cast<uint8_t*>(scratch.data()));
  } else {
    google::protobuf::io::ArrayOutputStream stream(scratch.data(),
                                                   static_cast<int>(size));
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    event.SerializeWithCachedSizes(&coded);
  }
  return scratch;
}

// Whether `logged`, an event's bytes as the log holds them, and `bytes`,
// another's deterministic serialization, are the same event. The log stores
// events deterministically serialized, so equal bytes decide it; a record
// converted from an older layout may hold an event's attributes in another
// order, which is then compared as it serializes now.
bool SameEvent(absl::string_view logged, absl::string_view bytes) {
  if (logged == bytes) return true;
  okrd::v1::KpiEvent event;
  return event.ParseFromArray(logged.data(), static_cast<int>(logged.size())) &&
         !event.attributes().empty() && SerializeEvent(event) == bytes;
}

// The events of logged records, read back for the ids an append finds
// again. Whole blocks of records are read (one seek, one copy) and the last
// few kept for the rest of the append: a producer's retries, or one
// partition sent again, ask for records close to each other.
class LoggedEvents {
 public:
  // Reads the block of records that holds `sequence` into `*bytes` and its
  // first sequence into `*first` (an empty block when there is none).
  using Reader = std::function<absl::Status(uint64_t sequence, uint64_t* first,
                                            std::string* bytes)>;
  explicit LoggedEvents(Reader read) : read_(std::move(read)) {}

  // The bytes of the event at `sequence`, valid until the next call.
  absl::StatusOr<absl::string_view> Get(uint64_t sequence);

 private:
  struct Block {
    uint64_t first = 0;
    std::string bytes;
    std::vector<absl::string_view> records;  // in `bytes`, from `first` on
  };
  static constexpr size_t kKeptBlocks = 8;
  Reader read_;
  std::deque<std::unique_ptr<Block>> blocks_;  // newest last
  std::string event_;
};

using google::protobuf::internal::WireFormatLite;
using Coded = google::protobuf::io::CodedOutputStream;

// Reads length-delimited field `field` of the serialized `message` into
// `*out` (the last one, if repeated; unset when absent). False when the
// message cannot be read.
bool ReadBytesField(absl::string_view message, int field,
                    std::optional<std::string>* out) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(message.data()),
      static_cast<int>(message.size()));
  out->reset();
  for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == field &&
        WireFormatLite::GetTagWireType(tag) ==
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::ReadBytes(&in, &out->emplace())) return false;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  // ReadTag() gives 0 at the end, and on a zero tag, which is damage.
  return in.CurrentPosition() == static_cast<int>(message.size());
}

absl::StatusOr<absl::string_view> LoggedEvents::Get(uint64_t sequence) {
  const Block* holding = nullptr;
  for (const std::unique_ptr<Block>& block : blocks_) {
    if (sequence >= block->first &&
        sequence - block->first < block->records.size()) {
      holding = block.get();
    }
  }
  if (holding == nullptr) {
    auto block = std::make_unique<Block>();
    if (absl::Status s = read_(sequence, &block->first, &block->bytes);
        !s.ok()) {
      return s;
    }
    bool stopped = false;
    if (!ReadBlock(
            block->bytes, block->first, block->first,
            [&](uint64_t, absl::string_view record) {
              block->records.push_back(record);
              return true;
            },
            &stopped)) {
      return absl::DataLossError(
          absl::StrCat("the block of event log records at ", block->first,
                       " does not parse"));
    }
    if (blocks_.size() == kKeptBlocks) blocks_.pop_front();
    holding = blocks_.emplace_back(std::move(block)).get();
  }
  std::optional<std::string> event;
  if (sequence < holding->first ||
      sequence - holding->first >= holding->records.size() ||
      !ReadBytesField(holding->records[sequence - holding->first], 2, &event) ||
      !event) {
    return absl::DataLossError(
        absl::StrCat("the id index names event log record ", sequence,
                     ", which the log does not hold as an event"));
  }
  event_ = *std::move(event);
  return event_;
}

uint8_t* WriteVarintField(int field, uint64_t value, uint8_t* out) {
  out = Coded::WriteTagToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_VARINT), out);
  return Coded::WriteVarint64ToArray(value, out);
}

uint8_t* WriteLengthPrefix(int field, size_t size, uint8_t* out) {
  out = Coded::WriteTagToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED),
      out);
  return Coded::WriteVarint32ToArray(static_cast<uint32_t>(size), out);
}

uint8_t* WriteBytesField(int field, absl::string_view bytes, uint8_t* out) {
  out = WriteLengthPrefix(field, bytes.size(), out);
  std::memcpy(out, bytes.data(), bytes.size());
  return out + bytes.size();
}

// `message` as field `field`; its size must be cached (ByteSizeLong()).
uint8_t* WriteMessageField(int field,
                           const google::protobuf::MessageLite& message,
                           uint8_t* out) {
  out = WriteLengthPrefix(field, message.GetCachedSize(), out);
  return message.SerializeWithCachedSizesToArray(out);
}

// The size of `position` serialized: its fields in number order, defaults
// left out, as protobuf writes them.
size_t PositionSize(const okrd::v1::SourcePosition& position) {
  size_t size = 0;
  if (!position.topic().empty()) {
    size += 1 + WireFormatLite::StringSize(position.topic());
  }
  if (position.partition() != 0) {
    size += 1 + WireFormatLite::Int32Size(position.partition());
  }
  if (position.offset() != 0) {
    size += 1 + WireFormatLite::Int64Size(position.offset());
  }
  return size;
}

// Writes `position` by hand: protobuf's serializer checks the topic's UTF-8
// again for every event, which cost a tenth of the append thread.
uint8_t* WritePosition(const okrd::v1::SourcePosition& position, uint8_t* out) {
  if (!position.topic().empty()) {
    out = WireFormatLite::WriteStringToArray(1, position.topic(), out);
  }
  if (position.partition() != 0) {
    out = WireFormatLite::WriteInt32ToArray(2, position.partition(), out);
  }
  if (position.offset() != 0) {
    out = WireFormatLite::WriteInt64ToArray(3, position.offset(), out);
  }
  return out;
}

// Fields 2 (`event_bytes`) and 3 (the position) of `record`, sized once,
// then written.
class RecordBody {
 public:
  RecordBody(const okrd::v1::StoredEvent& record, absl::string_view event_bytes)
      : record_(record),
        event_bytes_(event_bytes),
        position_(record.has_position() ? PositionSize(record.position()) : 0) {
  }

  size_t size() const {
    size_t size =
        1 + Coded::VarintSize32(static_cast<uint32_t>(event_bytes_.size())) +
        event_bytes_.size();
    if (record_.has_position()) {
      size +=
          1 + Coded::VarintSize32(static_cast<uint32_t>(position_)) + position_;
    }
    return size;
  }

  uint8_t* Write(uint8_t* out) const {
    out = WriteBytesField(2, event_bytes_, out);
    if (record_.has_position()) {
      out = WriteLengthPrefix(3, position_, out);
      out = WritePosition(record_.position(), out);
    }
    return out;
  }

 private:
  const okrd::v1::StoredEvent& record_;
  absl::string_view event_bytes_;
  size_t position_;  // its serialized size
};

size_t RecordSize(const okrd::v1::StoredEvent& record, size_t body) {
  size_t size = body;
  if (record.sequence() != 0) {
    size += 1 + Coded::VarintSize64(record.sequence());
  }
  if (record.ingest_time_us() != 0) {
    size +=
        1 + Coded::VarintSize64(static_cast<uint64_t>(record.ingest_time_us()));
  }
  if (record.has_amends()) {
    const size_t amends = record.amends().ByteSizeLong();
    size += 1 + Coded::VarintSize32(static_cast<uint32_t>(amends)) + amends;
  }
  if (record.schema_id() != 0) {
    size += 1 + Coded::VarintSize32(record.schema_id());
  }
  return size;
}

uint8_t* WriteRecord(const okrd::v1::StoredEvent& record,
                     absl::string_view body, uint8_t* out) {
  if (record.sequence() != 0) out = WriteVarintField(1, record.sequence(), out);
  std::memcpy(out, body.data(), body.size());
  out += body.size();
  if (record.ingest_time_us() != 0) {
    out = WriteVarintField(4, static_cast<uint64_t>(record.ingest_time_us()),
                           out);
  }
  // RecordSize() cached its size.
  if (record.has_amends()) out = WriteMessageField(6, record.amends(), out);
  if (record.schema_id() != 0) {
    out = WriteVarintField(7, record.schema_id(), out);
  }
  return out;
}

// The block of event records Append() fills. Each record is its size as a
// varint, then its bytes; a block's records have consecutive sequences from
// its key on. The buffer is kept from block to block.
class BlockWriter {
 public:
  bool empty() const { return used_ == 0; }
  size_t size() const { return used_; }
  rocksdb::Slice bytes() const { return rocksdb::Slice(buffer_.data(), used_); }
  void clear() { used_ = 0; }
  // `record`, whose fields 2 and 3 serialize to `body`, serialized in
  // place.
  void AddRecord(const okrd::v1::StoredEvent& record, absl::string_view body) {
    const size_t size = RecordSize(record, body.size());
    uint8_t* out = Reserve(5 + size);
    out = Coded::WriteVarint32ToArray(static_cast<uint32_t>(size), out);
    out = WriteRecord(record, body, out);
    used_ = static_cast<size_t>(reinterpret_cast<char*>(out) - buffer_.data());
  }
  void Add(absl::string_view record) {
    uint8_t* out = Reserve(5 + record.size());
    out =
        Coded::WriteVarint32ToArray(static_cast<uint32_t>(record.size()), out);
    std::memcpy(out, record.data(), record.size());
    used_ = static_cast<size_t>(reinterpret_cast<char*>(out) - buffer_.data()) +
            record.size();
  }

 private:
  // Room for `bytes` more; where they go.
  uint8_t* Reserve(size_t bytes) {
    if (buffer_.size() < used_ + bytes) {
      buffer_.resize(std::max(used_ + bytes, 2 * kBlockBytes));
    }
    return reinterpret_cast<uint8_t*>(buffer_.data() + used_);
  }

  std::string buffer_;
  size_t used_ = 0;
};

}  // namespace

void SerializeRecord(const okrd::v1::StoredEvent& record,
                     absl::string_view event_bytes, std::string* out) {
  const RecordBody fields(record, event_bytes);
  std::string body(fields.size(), '\0');
  fields.Write(reinterpret_cast<uint8_t*>(body.data()));
  out->resize(RecordSize(record, body.size()));
  uint8_t* begin = reinterpret_cast<uint8_t*>(out->data());
  out->resize(static_cast<size_t>(WriteRecord(record, body, begin) - begin));
}

Batch::Batch() {
  // About 300 bytes per event: a 5000-event batch takes a dozen blocks.
  google::protobuf::ArenaOptions options;
  options.start_block_size = 64 << 10;
  options.max_block_size = 1 << 20;
  arena = std::make_shared<google::protobuf::Arena>(options);
}

Batch::Candidate Batch::NewCandidate() {
  Candidate candidate;
  candidate.record =
      google::protobuf::Arena::CreateMessage<okrd::v1::StoredEvent>(
          arena.get());
  return candidate;
}

void Batch::Seal(Candidate& candidate) {
  const absl::string_view bytes = SerializeEvent(candidate.event());
  const okrd::v1::StoredEvent& record = *candidate.record;
  const RecordBody fields(record, bytes);
  const size_t size = fields.size();
  char* body = google::protobuf::Arena::CreateArray<char>(arena.get(), size);
  fields.Write(reinterpret_cast<uint8_t*>(body));
  candidate.body = absl::string_view(body, size);
  // Field 2's tag and size, then the event's bytes.
  candidate.event_bytes = candidate.body.substr(
      1 + Coded::VarintSize32(static_cast<uint32_t>(bytes.size())),
      bytes.size());
  // Field 1 of the event's bytes, which protobuf writes first, when it is
  // the id: the append thread then reads the id with the bytes it stores.
  const std::string& id = record.event().event_id();
  const size_t id_at =
      1 + Coded::VarintSize32(static_cast<uint32_t>(id.size()));
  const absl::string_view in_bytes = candidate.event_bytes.substr(
      std::min(id_at, candidate.event_bytes.size()), id.size());
  candidate.id = !id.empty() && in_bytes == id &&
                         static_cast<uint8_t>(candidate.event_bytes[0]) ==
                             WireFormatLite::MakeTag(
                                 1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)
                     ? in_bytes
                     : absl::string_view(id);
  candidate.amends = Amends(record.event());
  candidate.sealed = true;
}

std::string EventBytes(const okrd::v1::KpiEvent& event) {
  return std::string(SerializeEvent(event));
}

std::map<CounterKey, uint64_t> WithKnownCounters(
    std::map<CounterKey, uint64_t> counters) {
  counters.try_emplace({"accepted", ""}, 0);
  counters.try_emplace({"duplicate", ""}, 0);
  for (std::string_view reason : kRejectionReasons) {
    counters.try_emplace({"rejected", std::string(reason)}, 0);
  }
  return counters;
}

Batch::Candidate& Batch::AddCandidate() {
  return events.emplace_back(NewCandidate());
}

absl::string_view Batch::Keep(absl::string_view bytes) {
  char* copy =
      google::protobuf::Arena::CreateArray<char>(arena.get(), bytes.size());
  if (!bytes.empty()) std::memcpy(copy, bytes.data(), bytes.size());
  return absl::string_view(copy, bytes.size());
}

okrd::v1::RejectedRecord RejectCandidate(const Batch::Candidate& candidate,
                                         std::string reason,
                                         std::string detail) {
  okrd::v1::RejectedRecord record;
  record.set_reason(std::move(reason));
  record.set_detail(std::move(detail));
  record.set_raw(std::string(candidate.raw));
  record.set_content_type(candidate.content_type);
  *record.mutable_position() = candidate.record->position();
  return record;
}

// Options of every column family but `events` and `dedup`. Data blocks go
// to `cache` (RocksDB's own 8 MB cache per column family when null).
rocksdb::ColumnFamilyOptions BaseOptions(
    const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions options;
  options.OptimizeLevelStyleCompaction();
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

// Table options of the `dedup` column family (see IdIndexOptions()).
rocksdb::BlockBasedTableOptions IdIndexTableOptions(
    const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  // The top levels (one small block per run) stay with the table.
  table.pin_top_level_index_and_filter = true;
  return table;
}

// Options of the `dedup` column family, which the runs of the id index are
// written with too.
rocksdb::ColumnFamilyOptions IdIndexOptions(
    const std::shared_ptr<rocksdb::Cache>& cache) {
  // Nearly every lookup is for a new id: bloom filters answer those without
  // reading a block. The filters grow with the history (about 1.3 bytes per
  // id), so they live in the block cache, within storage.memory_mb, at high
  // priority: data blocks are evicted first. They are partitioned (4 KiB
  // each, with a two-level index), so a lookup needs one partition of a
  // run's filter, and one evicted costs a 4 KiB read, not the whole filter.
  // The id index's writer may give a run its filter whole instead
  // (EventLog::Options::whole_filter_ids); RocksDB reads each table's
  // filter in the form that table holds it.
  rocksdb::ColumnFamilyOptions options;
  options.OptimizeLevelStyleCompaction();
  options.table_factory.reset(
      rocksdb::NewBlockBasedTableFactory(IdIndexTableOptions(cache)));
  // Only a log written before the id index's runs puts ids in memtables.
  options.memtable_whole_key_filtering = true;
  options.memtable_prefix_bloom_size_ratio = 0.1;
  options.write_buffer_size = 16 << 20;
  return options;
}

absl::StatusOr<std::unique_ptr<EventLog>> EventLog::Open(
    const Options& options) {
  if (!options.read_only) {
    // RocksDB creates it too, but first logs its absence as an error.
    std::error_code ignored;
    std::filesystem::create_directories(options.path, ignored);
  }
  // A log that exists is opened as it is: a column family gone missing
  // (a damaged MANIFEST) must not come back empty, nor a log whose CURRENT
  // is gone be started afresh over its files.
  const std::filesystem::path dir(options.path);
  const bool exists = std::filesystem::exists(dir / "CURRENT");
  if (!exists) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with("MANIFEST-") || name.ends_with(".sst") ||
          name.ends_with(".log")) {
        return absl::DataLossError(absl::StrCat(
            "event log ", options.path, " is damaged: it holds ", name,
            " but no CURRENT file; okrd refuses to start on it"));
      }
    }
  }
  // What RocksDB's recovery will drop, measured before it does.
  uint64_t torn_tail = 0;
  if (exists && !options.read_only) {
    if (std::optional<std::filesystem::path> wal = NewestWal(dir)) {
      torn_tail = TornWalTail(*wal);
    }
  }
  rocksdb::Options db_options;
  db_options.create_if_missing = !options.read_only;
  db_options.create_missing_column_families = !options.read_only && !exists;
  // A torn last record (a crash mid-write) is dropped, as it was never
  // acknowledged; damage before the tail fails the open instead of silently
  // rolling the log back to it.
  db_options.wal_recovery_mode =
      rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  db_options.paranoid_checks = true;
  db_options.IncreaseParallelism(2);
  // One writer appends; the hashed dedup memtable needs serial inserts.
  db_options.allow_concurrent_memtable_write = false;
  // Small column families (meta, offsets) are written by every batch but
  // seldom fill a memtable; without a cap they would pin every WAL file and
  // crash recovery would replay the whole history.
  db_options.max_total_wal_size = 64 << 20;
  // A memtable flush writes tens of MB; left to the kernel's writeback they
  // pile up as dirty pages that the next WAL fsync then waits behind (the
  // file system's journal commits them together), a stall of the whole
  // pipeline. Written back as they go, they never pile up.
  db_options.bytes_per_sync = 1 << 20;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // RocksDB's own log goes to okrd's, not to a LOG file on the data disk:
  // on a full disk Debian's assertion-enabled build aborts writing it.
  db_options.info_log = std::make_shared<SpdLogger>();

  // RocksDB's memory within options.memory_bytes: memtables of every column
  // family are charged to one block cache of that size, and flushed once
  // they hold half of it.
  // Half of it for high-priority blocks: the id index's filters.
  rocksdb::LRUCacheOptions cache_options;
  cache_options.capacity = options.memory_bytes;
  cache_options.high_pri_pool_ratio = 0.5;
  const std::shared_ptr<rocksdb::Cache> cache =
      rocksdb::NewLRUCache(cache_options);
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.memory_bytes / 2,
                                                    cache);
  const rocksdb::ColumnFamilyOptions cf_options = BaseOptions(cache);
  const rocksdb::ColumnFamilyOptions dedup_options = IdIndexOptions(cache);

  // Event keys only ever grow: an insert hint per 6-byte key prefix turns
  // each memtable insert into an append instead of a skiplist search.
  rocksdb::ColumnFamilyOptions events_options = cf_options;
  events_options.memtable_insert_with_hint_prefix_extractor.reset(
      rocksdb::NewFixedPrefixTransform(6));

  // A log from before the id index's runs has no `layout` column family,
  // one from before the blocks no `event_blocks`: it is opened without and
  // given them (see event_log.h).
  std::vector<bool> present(kCfCount, true);
  if (exists) {
    std::vector<std::string> names;
    if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &names)
            .ok()) {
      for (int cf : {kLayout, kBlocks}) {
        present[cf] =
            std::find(names.begin(), names.end(), kCfNames[cf]) != names.end();
      }
    }
  }
  // Each snapshot is a level-0 file until compaction merges them: however
  // far compaction is behind (the log's column families go first), their
  // count must not slow the log's writes down, which RocksDB does for the
  // whole database.
  rocksdb::ColumnFamilyOptions snapshots_options = cf_options;
  snapshots_options.level0_slowdown_writes_trigger = 1 << 20;
  snapshots_options.level0_stop_writes_trigger = 1 << 20;
  auto options_of = [&](int cf) {
    return cf == kDedup                     ? dedup_options
           : cf == kEvents || cf == kBlocks ? events_options
           : cf == kSnapshots               ? snapshots_options
                                            : cf_options;
  };
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  std::vector<int> opened;
  for (int cf = kDefault; cf < kCfCount; ++cf) {
    if (!present[cf]) continue;
    descriptors.emplace_back(kCfNames[cf], options_of(cf));
    opened.push_back(cf);
  }
  auto log = std::unique_ptr<EventLog>(new EventLog());
  log->options_ = options;
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, descriptors,
                                         &handles, &raw)
          : rocksdb::DB::Open(db_options, options.path, descriptors, &handles,
                              &raw);
  log->handles_.assign(kCfCount, nullptr);
  for (size_t i = 0; i < handles.size() && i < opened.size(); ++i) {
    log->handles_[opened[i]] = handles[i];
  }
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat(
          "event log ", options.path,
          " is in use by another okrd process (its RocksDB LOCK is held)"));
    }
    if (s.IsCorruption() || s.IsInvalidArgument()) {
      return absl::DataLossError(absl::StrCat("event log ", options.path,
                                              " is damaged: ", s.ToString(),
                                              "; okrd refuses to start on it"));
    }
    return absl::UnavailableError(absl::StrCat(
        "cannot open event log ", options.path, ": ", s.ToString()));
  }
  log->db_.reset(raw);
  for (int cf = kDefault; cf < kCfCount && !options.read_only; ++cf) {
    if (present[cf]) continue;
    if (absl::Status created = FromRocks(
            log->db_->CreateColumnFamily(options_of(cf), kCfNames[cf],
                                         &log->handles_[cf]),
            absl::StrCat("adding the ", kCfNames[cf], " column family"));
        !created.ok()) {
      return created;
    }
  }
  if (absl::Status loaded = log->Load(); !loaded.ok()) return loaded;
  if (torn_tail > 0) {
    spdlog::error(
        "event log {}: its write-ahead log ended in {} bytes of an unfinished "
        "write, which recovery dropped: the batches in it were never "
        "confirmed durable, and their messages are consumed again from the "
        "offsets the log kept (okrd_eventlog_recovery_dropped_bytes)",
        options.path, torn_tail);
    absl::MutexLock lock(&log->mu_);
    log->stats_.recovery_dropped_bytes = torn_tail;
  }
  if (absl::Status checked =
          options.read_only ? absl::OkStatus() : log->CheckAtStart();
      !checked.ok()) {
    return absl::DataLossError(absl::StrCat(
        "event log ", options.path, " is damaged: ", checked.message(),
        "; okrd refuses to start on it (details: okrctl log verify "
        "--data-dir ",
        options.path, ")"));
  }
  if (!options.read_only) {
    // Runs and snapshots a crash left half-written.
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with(kRunPrefix) ||
          name.starts_with(kSnapshotFilePrefix)) {
        std::filesystem::remove(entry.path(), error);
      }
    }
    if (absl::Status built = log->EnsureIdIndex(); !built.ok()) return built;
    log->run_writer_ = std::thread([raw_log = log.get()] {
      pthread_setname_np(pthread_self(), "okrd-idruns");
      // Behind ingest for the CPU: a run is due only every id_run_ids
      // events, and a late one costs nothing but memory.
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
      raw_log->WriteRuns();
    });
  }
  return log;
}

EventLog::~EventLog() {
  if (run_writer_.joinable()) {
    {
      absl::MutexLock lock(&index_mu_);
      stop_writer_ = true;
    }
    run_writer_.join();
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle);
  }
  if (db_ != nullptr) db_->Close().PermitUncheckedError();
}

absl::Status EventLog::Load() {
  Stats stats;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string key = it->key().ToString();
    const absl::string_view value(it->value().data(), it->value().size());
    if (key == kLastSequenceKey) {
      stats.last_sequence = DecodeU64(value);
    } else if (key == kLastRejectedKey) {
      stats.last_rejected_sequence = DecodeU64(value);
    } else if (key.starts_with(kCounterPrefix)) {
      std::vector<std::string> parts = absl::StrSplit(
          key.substr(sizeof(kCounterPrefix) - 1), absl::MaxSplits('/', 1));
      if (parts.size() == 2) {
        stats.counters[{parts[0], parts[1]}] = DecodeU64(value);
      }
    } else if (key.starts_with(kPartitionCounterPrefix)) {
      auto parsed = ParsePartition(
          absl::string_view(key).substr(sizeof(kPartitionCounterPrefix) - 1));
      if (!parsed) continue;
      std::vector<std::string> parts =
          absl::StrSplit(parsed->second, absl::MaxSplits('/', 1));
      if (parts.size() == 2) {
        stats.partition_counters[parsed->first][{parts[0], parts[1]}] =
            DecodeU64(value);
      }
    } else if (key.starts_with(kFirstOffsetPrefix)) {
      auto parsed = ParsePartition(
          absl::string_view(key).substr(sizeof(kFirstOffsetPrefix) - 1));
      if (parsed) {
        stats.first_offsets[parsed->first] =
            static_cast<int64_t>(DecodeU64(value));
      }
    }
  }
  if (absl::Status s = FromRocks(it->status(), "reading meta"); !s.ok()) {
    return s;
  }
  it.reset(db_->NewIterator(rocksdb::ReadOptions(), handles_[kOffsets]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string key = it->key().ToString();
    const size_t nul = key.find('\0');
    int32_t partition = 0;
    if (nul == std::string::npos ||
        !absl::SimpleAtoi(key.substr(nul + 1), &partition)) {
      continue;
    }
    stats.offsets[{key.substr(0, nul), partition}] = static_cast<int64_t>(
        DecodeU64(absl::string_view(it->value().data(), it->value().size())));
  }
  if (absl::Status s = FromRocks(it->status(), "reading offsets"); !s.ok()) {
    return s;
  }
  // Without a covered sequence the log is new, or from before the id
  // index's runs: every id it holds is in `dedup` then.
  uint64_t covered = stats.last_sequence;
  bool stored = false;
  if (handles_[kLayout] != nullptr) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kLayout],
                                 kIdIndexCoveredKey, &value);
    if (s.ok()) {
      covered = DecodeU64(value);
      stored = true;
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "reading the layout");
    }
  }
  if (!stored && !options_.read_only) {
    if (stats.last_sequence > 0) {
      spdlog::info(
          "event log {} was written by an earlier okrd: its {} ids stay in "
          "its index, new ones go in as sorted runs",
          options_.path, stats.last_sequence);
    }
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    if (absl::Status s =
            FromRocks(db_->Put(write_options, handles_[kLayout],
                               kIdIndexCoveredKey, EncodeU64(covered)),
                      "writing the layout");
        !s.ok()) {
      return s;
    }
  }
  {
    absl::MutexLock lock(&index_mu_);
    covered_ = covered;
  }
  // Events from the first block on are in blocks; a log without any yet
  // writes its first one after its newest event.
  blocks_from_ = stats.last_sequence + 1;
  if (handles_[kBlocks] != nullptr) {
    it.reset(db_->NewIterator(rocksdb::ReadOptions(), handles_[kBlocks]));
    it->SeekToFirst();
    if (it->Valid()) {
      blocks_from_ =
          DecodeU64(absl::string_view(it->key().data(), it->key().size()));
    }
    if (absl::Status s = FromRocks(it->status(), "reading the log"); !s.ok()) {
      return s;
    }
  }
  absl::MutexLock lock(&mu_);
  stats_ = std::move(stats);
  return absl::OkStatus();
}

absl::Status EventLog::ForEachRecord(uint64_t from,
                                     const rocksdb::ReadOptions& read,
                                     const RawRecordFn& fn) const {
  bool stopped = false;  // by `fn`
  if (from < blocks_from_) {
    bool ended = false;  // by `fn`, or at the first block
    absl::Status s = ReadRecords(
        db_.get(), handles_[kEvents], read, /*blocks=*/false, from,
        "event log record",
        [&](uint64_t sequence, absl::string_view record) {
          if (sequence >= blocks_from_) return false;
          if (!fn(sequence, record)) stopped = true;
          return !stopped;
        },
        &ended);
    if (!s.ok() || stopped) return s;
  }
  return ReadRecords(db_.get(), handles_[kBlocks], read, /*blocks=*/true,
                     std::max(from, blocks_from_), "event log record", fn,
                     &stopped);
}

absl::Status EventLog::ReadBlockHolding(uint64_t sequence, uint64_t* first,
                                        std::string* bytes) const {
  *first = sequence;
  bytes->clear();
  if (sequence < blocks_from_) {
    // A record of the layout before the blocks: a block of one.
    std::string record;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kEvents],
                                 EncodeU64(sequence), &record);
    if (s.IsNotFound()) return absl::OkStatus();
    if (!s.ok()) return FromRocks(s, "reading the log");
    uint8_t size[5];
    const uint8_t* end =
        Coded::WriteVarint32ToArray(static_cast<uint32_t>(record.size()), size);
    bytes->assign(reinterpret_cast<const char*>(size),
                  static_cast<size_t>(end - size));
    bytes->append(record);
    return absl::OkStatus();
  }
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[kBlocks]));
  it->SeekForPrev(EncodeU64(sequence));
  if (it->Valid()) {
    *first = DecodeU64(absl::string_view(it->key().data(), it->key().size()));
    bytes->assign(it->value().data(), it->value().size());
  }
  return FromRocks(it->status(), "reading the log");
}

absl::StatusOr<uint64_t> EventLog::LastEventSequence() const {
  if (handles_[kBlocks] != nullptr) {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kBlocks]));
    it->SeekToLast();
    if (it->Valid()) {
      const uint64_t first =
          DecodeU64(absl::string_view(it->key().data(), it->key().size()));
      uint64_t last = 0;
      bool stopped = false;
      if (!ReadBlock(
              absl::string_view(it->value().data(), it->value().size()), first,
              first,
              [&](uint64_t sequence, absl::string_view) {
                last = sequence;
                return true;
              },
              &stopped)) {
        return absl::DataLossError(absl::StrCat(
            "the block of event log records at ", first, " does not parse"));
      }
      return last;
    }
    if (absl::Status s = FromRocks(it->status(), "reading the log"); !s.ok()) {
      return s;
    }
  }
  return LastKey(kEvents);
}

// The newest key of column family `cf` as a sequence, 0 when it is empty.
absl::StatusOr<uint64_t> EventLog::LastKey(int cf) const {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[cf]));
  it->SeekToLast();
  if (absl::Status s = FromRocks(it->status(), "reading the log"); !s.ok()) {
    return s;
  }
  if (!it->Valid()) return 0;
  return DecodeU64(absl::string_view(it->key().data(), it->key().size()));
}

absl::Status EventLog::CheckAtStart() const {
  const Stats stats = GetStats();
  for (const auto& [cf, what, recorded] :
       {std::tuple{kEvents, "record", stats.last_sequence},
        std::tuple{kRejected, "rejected record",
                   stats.last_rejected_sequence}}) {
    absl::StatusOr<uint64_t> last =
        cf == kEvents ? LastEventSequence() : LastKey(cf);
    if (!last.ok()) return last.status();
    if (*last != recorded) {
      return absl::DataLossError(
          absl::StrCat("its newest ", what, " has sequence ", *last,
                       " but its metadata says ", recorded));
    }
  }
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  for (const auto& [key, count] : stats.counters) {
    if (key.first == "accepted") accepted += count;
    if (key.first == "rejected") rejected += count;
  }
  // Every accepted event and tick has a sequence; every rejection one.
  if (accepted > stats.last_sequence ||
      rejected != stats.last_rejected_sequence) {
    return absl::DataLossError(absl::StrCat(
        "its counters (", accepted, " accepted, ", rejected,
        " rejected) do not fit its records (", stats.last_sequence,
        " sequences, ", stats.last_rejected_sequence, " rejected)"));
  }
  if (stats.last_sequence > 0 && stats.offsets.empty() && accepted > 0) {
    bool imported_only = true;
    absl::Status s = ForEach(stats.last_sequence, [&](const auto& e) {
      imported_only = !e.has_event() || (!e.position().topic().empty() &&
                                         !FromKafka(e.position()));
      return false;
    });
    if (!s.ok()) return s;
    if (!imported_only) {
      return absl::DataLossError(
          "it holds events from Kafka but no consumer offsets");
    }
  }
  // The newest event the id index's runs cover must be in them: the
  // index is intact at least where it was last written.
  uint64_t covered = 0;
  {
    absl::MutexLock lock(&index_mu_);
    covered = covered_;
  }
  if (covered > stats.last_sequence) {
    return absl::DataLossError(
        absl::StrCat("its id index covers sequence ", covered,
                     " but its newest record is ", stats.last_sequence));
  }
  std::optional<okrd::v1::StoredEvent> newest;
  for (uint64_t sequence = covered;
       sequence > 0 && sequence + 16 > covered && !newest; --sequence) {
    absl::StatusOr<std::optional<okrd::v1::StoredEvent>> record = Get(sequence);
    if (!record.ok()) return record.status();
    if (record->has_value() && (*record)->has_event()) newest = **record;
  }
  if (newest) {
    absl::StatusOr<std::optional<uint64_t>> found =
        FindInRuns(newest->event().event_id());
    if (!found.ok()) return found.status();
    if (found->value_or(0) != newest->sequence()) {
      return absl::DataLossError(
          absl::StrCat("event ", newest->event().event_id(), " (sequence ",
                       newest->sequence(), ") is missing from its id index"));
    }
  }
  return absl::OkStatus();
}

absl::Status EventLog::Verify(
    const std::function<void(absl::string_view, uint64_t, uint64_t)>& progress)
    const {
  if (absl::Status s = CheckAtStart(); !s.ok()) return s;
  const Stats stats = GetStats();
  uint64_t expected = 1;
  uint64_t accepted = 0;
  std::map<PartitionKey, int64_t> last_offset;
  absl::Status problem;
  absl::Status s = ForEach(1, [&](const okrd::v1::StoredEvent& e) {
    if (e.sequence() != expected) {
      problem = absl::DataLossError(absl::StrCat(
          "sequence ", expected, " is missing (next is ", e.sequence(), ")"));
      return false;
    }
    ++expected;
    if ((e.sequence() & 0xffff) == 0) {
      progress("records", e.sequence(), stats.last_sequence);
    }
    if (!e.has_event()) return true;  // a clock tick
    ++accepted;
    absl::StatusOr<std::optional<okrd::v1::StoredEvent>> found =
        GetByEventId(e.event().event_id());
    if (!found.ok()) {
      problem = found.status();
      return false;
    }
    if (!found->has_value() || (*found)->sequence() != e.sequence()) {
      problem = absl::DataLossError(absl::StrCat("event ", e.event().event_id(),
                                                 " (sequence ", e.sequence(),
                                                 ") is not found by its id"));
      return false;
    }
    const okrd::v1::SourcePosition& p = e.position();
    if (!FromKafka(p)) return true;  // imported
    const PartitionKey key{p.topic(), p.partition()};
    auto [it, first] = last_offset.try_emplace(key, p.offset());
    if (!first && p.offset() <= it->second) {
      problem = absl::DataLossError(absl::StrCat(
          "offsets of ", key.first, "/", key.second, " go back from ",
          it->second, " to ", p.offset(), " at sequence ", e.sequence()));
      return false;
    }
    it->second = p.offset();
    return true;
  });
  if (!s.ok()) return s;
  if (!problem.ok()) return problem;
  if (expected - 1 != stats.last_sequence) {
    return absl::DataLossError(absl::StrCat("records end at sequence ",
                                            expected - 1, ", metadata says ",
                                            stats.last_sequence));
  }
  auto counted = [&](const std::string& outcome) {
    uint64_t n = 0;
    for (const auto& [key, count] : stats.counters) {
      if (key.first == outcome) n += count;
    }
    return n;
  };
  if (counted("accepted") != accepted) {
    return absl::DataLossError(
        absl::StrCat("counters say ", counted("accepted"),
                     " accepted, the log holds ", accepted, " events"));
  }
  for (const auto& [key, offset] : last_offset) {
    auto next = stats.offsets.find(key);
    if (next == stats.offsets.end() || next->second <= offset) {
      return absl::DataLossError(
          absl::StrCat("the stored next offset of ", key.first, "/", key.second,
                       " is not past its last event (offset ", offset, ")"));
    }
  }
  std::map<std::string, uint64_t> reasons;
  uint64_t rejected_expected = 1;
  s = ForEachRejected(1, [&](const okrd::v1::RejectedRecord& r) {
    if (r.sequence() != rejected_expected) {
      problem = absl::DataLossError(
          absl::StrCat("rejected record ", rejected_expected, " is missing"));
      return false;
    }
    ++rejected_expected;
    ++reasons[r.reason()];
    if ((r.sequence() & 0xffff) == 0) {
      progress("rejected records", r.sequence(), stats.last_rejected_sequence);
    }
    return true;
  });
  if (!s.ok()) return s;
  if (!problem.ok()) return problem;
  for (const auto& [key, count] : stats.counters) {
    if (key.first == "rejected" && reasons[key.second] != count) {
      return absl::DataLossError(
          absl::StrCat("counters say ", count, " rejected as ", key.second,
                       ", the log holds ", reasons[key.second]));
    }
  }
  progress("records", stats.last_sequence, stats.last_sequence);
  return absl::OkStatus();
}

absl::StatusOr<AppendResult> EventLog::Append(Batch&& batch, Durable durable) {
  if (options_.read_only) {
    return absl::FailedPreconditionError("event log is open read-only");
  }
  Stats next;
  {
    absl::MutexLock lock(&mu_);
    next = stats_;
  }
  AppendResult result;
  result.arena = batch.arena;
  // Room for the events, so the batch is not copied as it grows.
  rocksdb::WriteBatch wb(batch.events.size() * 256);
  // The block being filled, and the sequence of its first record.
  BlockWriter block;
  uint64_t block_first = 0;
  auto close_full_block = [&] {
    if (block.size() >= kBlockBytes) {
      wb.Put(handles_[kBlocks], EncodeU64(block_first), block.bytes());
      block.clear();
    }
  };
  const int64_t ingest_us = absl::ToUnixMicros(batch.ingest_time);

  // Prepare() looked the ids up in the runs, or does so now; the ids
  // appended since are in memory. A table dropped since the lookup (its run
  // went in meanwhile) would leave a gap: look up again then.
  absl::MutexLock index_lock(&index_mu_);
  // A run writer that cannot keep up holds appends back, rather than full
  // tables piling up in memory; one whose writes fail does not (its tables
  // wait in memory for the disk, see WriteRuns).
  index_mu_.Await(absl::Condition(
      +[](EventLog* log) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return log->stop_writer_ || log->run_failing_ ||
               log->UnwrittenTables() < kMaxUnwrittenTables;
      },
      this));
  while (!frozen_.empty() && frozen_.front()->written) {
    frozen_.pop_front();
    tables_dropped_.fetch_add(1);
  }
  if (batch.looked_up_any && batch.prepared_after != tables_dropped_.load()) {
    for (Batch::Candidate& c : batch.events) c.looked_up = false;
    batch.looked_up_any = false;
  }
  if (absl::Status s = Prepare(batch); !s.ok()) return s;
  const uint64_t before = next.last_sequence;
  result.appended.reserve(batch.events.size() + 1);
  // Ids this batch put in the active table, taken out again if the write
  // fails.
  std::vector<absl::string_view> inserted;
  inserted.reserve(batch.events.size());
  auto undo = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_) {
    for (absl::string_view id : inserted) active_->Erase(id);
  };
  absl::flat_hash_map<std::string, okrd::v1::AmendmentState> amended;
  uint64_t accepted = 0;
  std::string value;
  PartitionTally tally(&next.partition_counters);
  // Each new id probes every in-memory table, which miss the cache: the
  // probes of the id kPrefetchAhead places on are started early.
  constexpr size_t kPrefetchAhead = 8;
  auto prefetch = [&](size_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_) {
    if (i >= batch.events.size() || batch.events[i].logged) return;
    for (const auto& frozen : frozen_) {
      frozen->table->Prefetch(batch.events[i].id);
    }
    active_->Prefetch(batch.events[i].id);
  };
  // The stored event bytes of this batch's accepted events, by sequence
  // after `before`; older ones are read back from the log.
  std::vector<absl::string_view> appended_bytes;
  appended_bytes.reserve(batch.events.size());
  LoggedEvents logged_events(
      [this](uint64_t sequence, uint64_t* first, std::string* bytes) {
        return ReadBlockHolding(sequence, first, bytes);
      });
  auto logged_bytes =
      [&](uint64_t sequence) -> absl::StatusOr<absl::string_view> {
    if (sequence > before) return appended_bytes[sequence - before - 1];
    return logged_events.Get(sequence);
  };
  for (size_t i = 0; i < kPrefetchAhead; ++i) prefetch(i);
  for (size_t i = 0; i < batch.events.size(); ++i) {
    prefetch(i + kPrefetchAhead);
    Batch::Candidate& c = batch.events[i];
    const absl::string_view id = c.id;
    bool seen = c.logged;
    uint64_t existing = c.logged_sequence;
    // Older in-memory tables first; then the active one, which takes a new
    // id in the same probe. A correction's id goes in only once its target
    // is resolved (it could name itself).
    const bool amends = c.amends;
    std::optional<IdTable::Entry> present;
    if (!seen) present = FindInFrozen(id);
    if (!seen && !present) {
      present = amends ? active_->Find(id)
                       : active_->InsertOrFind(
                             id, {.sequence = next.last_sequence + 1});
      if (!present && !amends) inserted.push_back(id);
    }
    if (present) {
      seen = true;
      existing = present->sequence;
    }
    if (seen) {
      // The id names the event stored first: the same event again is a
      // duplicate, anything else a conflict. Compared whole, byte for byte.
      absl::StatusOr<absl::string_view> logged = logged_bytes(existing);
      if (!logged.ok()) {
        undo();
        return logged.status();
      }
      if (SameEvent(*logged, c.event_bytes)) {
        ++result.duplicates;
        tally.Add(c.record->position(), "duplicate", "");
      } else {
        result.rejected.push_back(RejectCandidate(
            c, "conflict",
            absl::StrCat("event_id \"", c.event().event_id(),
                         "\" was already logged with another payload")));
      }
      continue;
    }
    okrd::v1::Amendment amendment;
    if (amends) {
      std::string reason;
      std::string detail;
      absl::Status s = ResolveAmendment(c.event(), result, before, amended,
                                        &amendment, &reason, &detail);
      if (!s.ok()) {
        undo();
        return s;
      }
      if (!reason.empty()) {
        result.rejected.push_back(
            RejectCandidate(c, std::move(reason), std::move(detail)));
        continue;
      }
      okrd::v1::AmendmentState& state = amended[c.event().corrects_event_id()];
      state.set_value(c.event().value());
      state.set_retracted(c.event().kind() == okrd::v1::RETRACTION);
      wb.Put(handles_[kAmendments], c.event().corrects_event_id(),
             state.SerializeAsString());
    }
    const uint64_t sequence = ++next.last_sequence;
    okrd::v1::StoredEvent& stored = *c.record;
    stored.set_sequence(sequence);
    if (amendment.target_sequence() != 0) *stored.mutable_amends() = amendment;
    stored.set_ingest_time_us(ingest_us);
    if (block.empty()) block_first = sequence;
    block.AddRecord(stored, c.body);
    close_full_block();
    result.appended.push_back(&stored);
    appended_bytes.push_back(c.event_bytes);
    if (amends) {
      active_->InsertOrFind(id, {.sequence = sequence});
      inserted.push_back(id);
    }
    ++accepted;
    tally.Add(stored.position(), "accepted", "");
  }
  if (accepted > 0) next.counters[{"accepted", ""}] += accepted;
  if (result.duplicates > 0) {
    next.counters[{"duplicate", ""}] += result.duplicates;
  }
  if (batch.tick) {
    auto& tick = *google::protobuf::Arena::CreateMessage<okrd::v1::StoredEvent>(
        batch.arena.get());
    result.appended.push_back(&tick);
    tick.set_sequence(++next.last_sequence);
    tick.set_ingest_time_us(ingest_us);
    tick.mutable_tick()->set_wall_time_us(ingest_us);
    tick.SerializeToString(&value);
    if (block.empty()) block_first = tick.sequence();
    block.Add(value);
    close_full_block();
  }
  if (!block.empty()) {
    wb.Put(handles_[kBlocks], EncodeU64(block_first), block.bytes());
  }
  for (okrd::v1::RejectedRecord& r : batch.rejects) {
    result.rejected.push_back(std::move(r));
  }
  for (okrd::v1::RejectedRecord& r : result.rejected) {
    r.set_sequence(++next.last_rejected_sequence);
    r.set_ingest_time_us(ingest_us);
    r.SerializeToString(&value);
    wb.Put(handles_[kRejected], EncodeU64(r.sequence()), value);
    ++next.counters[{"rejected", r.reason()}];
    tally.Add(r.position(), "rejected", r.reason());
  }
  for (const auto& [key, offset] : batch.next_offsets) {
    // A partition the log has never taken from: remember where it began.
    if (!next.offsets.contains(key)) {
      if (auto first = batch.first_offsets.find(key);
          first != batch.first_offsets.end()) {
        wb.Put(handles_[kMeta],
               absl::StrCat(kFirstOffsetPrefix, OffsetKey(key)),
               EncodeU64(static_cast<uint64_t>(first->second)));
        next.first_offsets[key] = first->second;
      }
    }
    wb.Put(handles_[kOffsets], OffsetKey(key),
           EncodeU64(static_cast<uint64_t>(offset)));
    next.offsets[key] = offset;
  }
  wb.Put(handles_[kMeta], kLastSequenceKey, EncodeU64(next.last_sequence));
  wb.Put(handles_[kMeta], kLastRejectedKey,
         EncodeU64(next.last_rejected_sequence));
  for (const auto& [key, count] : next.counters) {
    wb.Put(handles_[kMeta], CounterKeyString(key), EncodeU64(count));
  }
  // Only the partitions of this batch changed.
  for (const auto& [partition, unused] : batch.next_offsets) {
    auto counters = next.partition_counters.find(partition);
    if (counters == next.partition_counters.end()) continue;
    for (const auto& [key, count] : counters->second) {
      wb.Put(handles_[kMeta], PartitionCounterKeyString(partition, key),
             EncodeU64(count));
    }
  }
  result.next_offsets = batch.next_offsets;
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync && durable == Durable::kOnReturn;
  // The batch is written whole or not at all; the same WriteBatch is tried
  // again, and nothing above changed state outside it.
  for (int attempt = 1;; ++attempt) {
    const rocksdb::Status written = db_->Write(write_options, &wb);
    if (written.ok()) break;
    absl::Status s = FromRocks(written, "append");
    if (!written.IsIOError() || !options_.on_write_error ||
        !options_.on_write_error(s, attempt)) {
      undo();
      return s;
    }
    // Clears the background error a failed write leaves once its cause is
    // gone. While it is not, or while RocksDB's own recovery runs (Busy),
    // this fails and the next attempt says how the write goes.
    db_->Resume().PermitUncheckedError();
  }
  MaybeFreeze(next.last_sequence);
  id_table_bytes_.store(IdTablesInMemory().second, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    stats_ = std::move(next);
  }
  return result;
}

absl::Status EventLog::Prepare(Batch& batch) const {
  // Every run of a table dropped by now is visible to the lookup below, and
  // its ids are in the filter read after this; the ids of later drops may be
  // or not, and Append() looks again.
  const uint64_t dropped = tables_dropped_.load();
  const std::shared_ptr<const IdFilterParts> filter = id_filter();
  // The candidates to look up, with their ids' hashes for the filter.
  std::vector<std::pair<uint32_t, uint64_t>> pending;
  pending.reserve(batch.events.size());
  for (uint32_t i = 0; i < batch.events.size(); ++i) {
    Batch::Candidate& c = batch.events[i];
    if (c.looked_up) continue;
    if (!c.sealed) batch.Seal(c);
    pending.emplace_back(i, filter != nullptr ? IdFilter::Hash(c.id) : 0);
  }
  if (pending.empty()) return absl::OkStatus();
  if (!batch.looked_up_any) {
    batch.looked_up_any = true;
    batch.prepared_after = dropped;
  }
  // In key order, which RocksDB would sort them into otherwise. The ids sit
  // beside their indexes while sorting, rather than being reached through
  // each event at every comparison. Only the filter's "maybe"s: an id it
  // has never seen is in no run.
  std::vector<std::pair<absl::string_view, uint32_t>> ids;
  ids.reserve(filter != nullptr ? pending.size() / 16 : pending.size());
  // A filter larger than the cache misses it: the probe of the id
  // kPrefetchAhead places on is started early.
  constexpr size_t kPrefetchAhead = 8;
  for (size_t k = 0; k < pending.size(); ++k) {
    Batch::Candidate& c = batch.events[pending[k].first];
    if (filter != nullptr) {
      bool maybe = false;
      for (const std::shared_ptr<IdFilter>& part : *filter) {
        if (k + kPrefetchAhead < pending.size()) {
          part->Prefetch(pending[k + kPrefetchAhead].second);
        }
        maybe = maybe || part->MayContainHash(pending[k].second);
      }
      if (!maybe) {
        c.looked_up = true;
        c.logged = false;
        continue;
      }
    }
    ids.emplace_back(c.id, pending[k].first);
  }
  if (ids.empty()) return absl::OkStatus();
  run_lookups_.fetch_add(ids.size(), std::memory_order_relaxed);
  const size_t n = ids.size();
  SortByIds(ids, [](const auto& id) { return id.first; });
  std::vector<rocksdb::Slice> keys;
  keys.reserve(n);
  for (const auto& [id, unused] : ids) keys.emplace_back(id.data(), id.size());
  std::vector<rocksdb::PinnableSlice> found(n);
  std::vector<rocksdb::Status> statuses(n);
  // In calls of 32 keys, the batch RocksDB 7.8 looks up at a time: past
  // that, its key contexts spill from inline storage into a vector that
  // grows by copying (6.5% of the consume thread at 5000 keys a call).
  constexpr size_t kMultiGetBatch = 32;
  const rocksdb::ReadOptions read_options;
  for (size_t k = 0; k < n; k += kMultiGetBatch) {
    const size_t count = std::min(kMultiGetBatch, n - k);
    db_->MultiGet(read_options, handles_[kDedup], count, keys.data() + k,
                  found.data() + k, statuses.data() + k,
                  /*sorted_input=*/true);
  }
  for (size_t k = 0; k < n; ++k) {
    Batch::Candidate& c = batch.events[ids[k].second];
    c.looked_up = true;
    c.logged = statuses[k].ok();
    if (c.logged) {
      // The sequence (then, in runs written before 2026-12-03, a hash of
      // the event, no longer read).
      c.logged_sequence =
          DecodeU64(absl::string_view(found[k].data(), found[k].size()));
    } else if (!statuses[k].IsNotFound()) {
      return FromRocks(statuses[k], "dedup lookup");
    }
  }
  return absl::OkStatus();
}

std::optional<IdTable::Entry> EventLog::FindInFrozen(
    absl::string_view id) const {
  std::optional<IdTable::Entry> entry;
  for (auto it = frozen_.rbegin(); !entry && it != frozen_.rend(); ++it) {
    entry = (*it)->table->Find(id);
  }
  return entry;
}

std::optional<IdTable::Entry> EventLog::FindInMemory(
    absl::string_view id) const {
  std::optional<IdTable::Entry> entry = active_->Find(id);
  return entry ? entry : FindInFrozen(id);
}

absl::StatusOr<std::optional<uint64_t>> EventLog::FindId(
    absl::string_view id) const {
  if (std::optional<IdTable::Entry> entry = FindInMemory(id)) {
    return entry->sequence;
  }
  return FindInRuns(id);
}

absl::StatusOr<std::optional<uint64_t>> EventLog::FindInRuns(
    absl::string_view id) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kDedup],
                               rocksdb::Slice(id.data(), id.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "id lookup");
  return DecodeU64(value);
}

void EventLog::MaybeFreeze(uint64_t covered) {
  if (active_->size() < options_.id_run_ids) return;
  auto frozen = std::make_shared<FrozenTable>();
  frozen->table = std::move(active_);
  frozen->covered = covered;
  frozen_.push_back(std::move(frozen));
  active_ = std::make_unique<IdTable>(options_.id_run_ids);
}

absl::Status EventLog::EnsureIdIndex() const {
  absl::MutexLock lock(&index_mu_);
  if (index_built_) return absl::OkStatus();
  absl::Status s = const_cast<EventLog*>(this)->RebuildIdIndex();
  if (s.ok()) index_built_ = true;
  return s;
}

absl::Status EventLog::RebuildIdIndex() {
  active_ = std::make_unique<IdTable>(options_.id_run_ids);
  frozen_.clear();
  const uint64_t last = last_sequence();
  if (covered_ >= last) return absl::OkStatus();
  const absl::Time start = absl::Now();
  const uint64_t total = last - covered_;
  if (total >= 100000) {
    spdlog::info("id index: reading the {} records after sequence {}", total,
                 covered_);
  }
  // Only the id and the event's bytes are needed: the record is read
  // field by field rather than parsed whole.
  absl::Status damage;
  absl::Status s = ForEachRecord(
      covered_ + 1, ScanOptions(),
      [&](uint64_t sequence, absl::string_view record)
          ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_) {
            // StoredEvent.event, then KpiEvent.event_id.
            std::optional<std::string> event;
            std::optional<std::string> id;
            if (!ReadBytesField(record, 2, &event) ||
                (event && !ReadBytesField(*event, 1, &id))) {
              damage = absl::DataLossError(absl::StrCat(
                  "event log record ", sequence, " does not parse"));
              return false;
            }
            if (!event) return true;  // a clock tick
            active_->InsertOrFind(id.value_or(""), {.sequence = sequence});
            MaybeFreeze(sequence);
            return true;
          });
  if (!s.ok()) return s;
  if (!damage.ok()) return damage;
  if (total >= 100000) {
    spdlog::info("id index: {} ids in memory after {}", active_->size(),
                 absl::FormatDuration(absl::Now() - start));
  }
  return absl::OkStatus();
}

void EventLog::WriteRuns() {
  absl::Duration backoff = absl::Seconds(1);
  const absl::Time build_filter_at =
      absl::Now() +
      (IdsInRuns() > 1000000 ? options_.id_filter_delay : absl::ZeroDuration());
  for (;;) {
    std::shared_ptr<FrozenTable> next;
    {
      absl::MutexLock lock(&index_mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(index_mu_) {
        return stop_writer_ || filter_due_ || Unwritten() != nullptr;
      };
      index_mu_.Await(absl::Condition(&ready));
      if (stop_writer_) return;
      next = Unwritten();
    }
    if (next == nullptr && absl::Now() < build_filter_at) {
      // Not yet (see Options::id_filter_delay); tables meanwhile.
      absl::MutexLock lock(&index_mu_);
      index_mu_.AwaitWithDeadline(
          absl::Condition(
              +[](EventLog* log) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                return log->stop_writer_ || log->Unwritten() != nullptr;
              },
              this),
          build_filter_at);
      continue;
    }
    if (next == nullptr) {
      // Tables first: appends may be waiting for them.
      absl::Status s = BuildIdFilter();
      if (absl::IsCancelled(s)) return;
      if (!s.ok()) {
        // Lookups go to the runs' own filters meanwhile; tried again after
        // the next run.
        spdlog::warn(
            "id index: building the filter of the runs' ids failed: {}",
            std::string(s.message()));
      }
      absl::MutexLock lock(&index_mu_);
      filter_due_ = false;
      continue;
    }
    // A frozen table no longer changes: it is read here without the lock.
    const absl::Time start = absl::Now();
    absl::Status s = WriteRun(*next->table, next->covered);
    if (s.ok()) {
      spdlog::info("id index: {} ids written as a run in {}, covered to {}",
                   next->table->size(),
                   absl::FormatDuration(absl::Now() - start), next->covered);
    }
    if (s.ok()) GrowIdFilter();
    // Again after a run, when building it failed.
    const bool filter_due = id_filter() == nullptr;
    absl::MutexLock lock(&index_mu_);
    run_failing_ = !s.ok();
    if (s.ok()) {
      next->written = true;
      covered_ = next->covered;
      ++runs_written_;
      filter_due_ = filter_due;
      backoff = absl::Seconds(1);
      continue;
    }
    spdlog::warn("id index: writing a run of {} ids failed, kept in memory: {}",
                 next->table->size(), std::string(s.message()));
    index_mu_.AwaitWithTimeout(
        absl::Condition(
            +[](bool* stop) { return *stop; }, &stop_writer_),
        backoff);
    backoff = std::min(backoff * 2, absl::Seconds(30));
    if (stop_writer_) return;
  }
}

std::shared_ptr<const EventLog::IdFilterParts> EventLog::id_filter() const {
  absl::MutexLock lock(&filter_mu_);
  return filter_;
}

void EventLog::GrowIdFilter() {
  const std::shared_ptr<const IdFilterParts> parts = id_filter();
  if (parts == nullptr || parts->back()->ids() <= parts->back()->capacity()) {
    return;
  }
  size_t ids = 0;
  for (const std::shared_ptr<IdFilter>& part : *parts) ids += part->ids();
  auto grown = std::make_shared<IdFilterParts>(*parts);
  grown->push_back(
      std::make_shared<IdFilter>(std::max(options_.id_filter_ids, 2 * ids)));
  spdlog::info(
      "id index: the filter of the runs' {} ids gains a part with "
      "room for {} more",
      ids, grown->back()->capacity());
  absl::MutexLock lock(&filter_mu_);
  filter_ = std::move(grown);
}

uint64_t EventLog::IdsInRuns() const {
  uint64_t ids = 0;
  db_->GetIntProperty(handles_[kDedup], "rocksdb.estimate-num-keys", &ids);
  return ids;
}

absl::Status EventLog::BuildIdFilter() {
  const absl::Time start = absl::Now();
  const uint64_t estimate = IdsInRuns();
  size_t capacity = std::max<size_t>(options_.id_filter_ids, 2 * estimate);
  std::shared_ptr<IdFilter> filter;
  // Again, larger, in the unlikely case the estimate fell short by half.
  while (filter == nullptr || filter->ids() > filter->capacity() / 2) {
    if (filter != nullptr) capacity = 2 * filter->ids();
    filter = std::make_shared<IdFilter>(capacity);
    if (estimate >= 1000000) {
      spdlog::info("id index: building the filter of the runs' {} ids",
                   estimate);
    }
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(ScanOptions(), handles_[kDedup]));
    size_t read = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const rocksdb::Slice key = it->key();
      filter->Add(absl::string_view(key.data(), key.size()));
      if (++read % 65536 == 0) {
        absl::MutexLock lock(&index_mu_);
        if (stop_writer_) return absl::CancelledError("closing");
      }
    }
    if (absl::Status s = FromRocks(it->status(), "reading the id index");
        !s.ok()) {
      return s;
    }
  }
  {
    absl::MutexLock lock(&filter_mu_);
    filter_ = std::make_shared<const IdFilterParts>(IdFilterParts{filter});
  }
  {
    absl::MutexLock lock(&index_mu_);
    ++filters_built_;
  }
  if (filter->ids() >= 1000000) {
    spdlog::info("id index: filter of {} ids (room for {}, {} MB) built in {}",
                 filter->ids(), filter->capacity(), filter->MemoryBytes() >> 20,
                 absl::FormatDuration(absl::Now() - start));
  }
  return absl::OkStatus();
}

absl::Status EventLog::WriteRun(const IdTable& table, uint64_t covered) {
  const std::string path = (std::filesystem::path(options_.path) /
                            absl::StrCat(kRunPrefix, covered, ".sst"))
                               .string();
  rocksdb::Options run_options(rocksdb::DBOptions(), IdIndexOptions(nullptr));
  // Uncompressed: LZ4 was a quarter of the run writer's CPU when entries
  // held a 32-byte hash of the event, and saved 2%; ids that share prefixes
  // are prefix-compressed within a block by RocksDB anyway. An
  // SstFileWriter takes the last entry of compression_per_level (LZ4, from
  // OptimizeLevelStyleCompaction) over `compression`: both are set.
  run_options.compression = rocksdb::kNoCompression;
  run_options.compression_per_level.clear();
  if (table.size() <= options_.whole_filter_ids) {
    // A small run's filter whole (about 1.25 bytes per id): see
    // Options::whole_filter_ids.
    rocksdb::BlockBasedTableOptions whole = IdIndexTableOptions(nullptr);
    whole.partition_filters = false;
    run_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(whole));
  }
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), run_options,
                                handles_[kDedup]);
  if (absl::Status s = FromRocks(writer.Open(path), "opening a run"); !s.ok()) {
    return s;
  }
  // Into the filter before the table is marked written (see filter_), and
  // before the run goes in: an id in the filter and in no run costs only a
  // lookup, the reverse would miss a duplicate.
  const std::vector<IdTable::Slot> sorted = table.Sorted();
  if (const std::shared_ptr<const IdFilterParts> parts = id_filter()) {
    std::vector<uint64_t> hashes(sorted.size());
    for (size_t i = 0; i < sorted.size(); ++i) {
      hashes[i] = IdFilter::Hash(sorted[i].id);
    }
    parts->back()->AddHashes(hashes);
  }
  std::string value;
  for (const IdTable::Slot& slot : sorted) {
    const absl::string_view id = slot.id;
    value = EncodeU64(slot.sequence);
    if (absl::Status s =
            FromRocks(writer.Put(rocksdb::Slice(id.data(), id.size()), value),
                      "writing a run");
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = FromRocks(writer.Finish(), "finishing a run"); !s.ok()) {
    return s;
  }
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;
  if (absl::Status s =
          FromRocks(db_->IngestExternalFile(handles_[kDedup], {path}, ingest),
                    "ingesting a run");
      !s.ok()) {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    return s;
  }
  // After the run is in: a crash between the two replays its ids again,
  // which finds them in memory and in the run alike.
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  return FromRocks(db_->Put(write_options, handles_[kLayout],
                            kIdIndexCoveredKey, EncodeU64(covered)),
                   "advancing the id index");
}

EventLog::IdIndexStats EventLog::id_index_stats() const {
  IdIndexStats stats;
  {
    absl::MutexLock lock(&index_mu_);
    stats.covered_sequence = covered_;
    stats.runs_written = runs_written_;
    stats.filters_built = filters_built_;
    std::tie(stats.memory_ids, stats.memory_bytes) = IdTablesInMemory();
  }
  if (const std::shared_ptr<const IdFilterParts> parts = id_filter()) {
    stats.filter_parts = parts->size();
    for (const std::shared_ptr<IdFilter>& part : *parts) {
      stats.filter_ids += part->ids();
      stats.filter_capacity += part->capacity();
      stats.filter_bytes += part->MemoryBytes();
    }
  }
  stats.run_lookups = run_lookups_.load(std::memory_order_relaxed);
  uint64_t readers = 0;
  if (db_->GetIntProperty(handles_[kDedup],
                          "rocksdb.estimate-table-readers-mem", &readers)) {
    stats.run_reader_bytes = readers;
  }
  // Only the runs keep filter and index blocks in the cache. RocksDB counts
  // them at most every 10 s: the figure may be that old.
  std::map<std::string, std::string> cached;
  if (db_->GetMapProperty(rocksdb::DB::Properties::kBlockCacheEntryStats,
                          &cached)) {
    for (rocksdb::CacheEntryRole role :
         {rocksdb::CacheEntryRole::kFilterBlock,
          rocksdb::CacheEntryRole::kFilterMetaBlock,
          rocksdb::CacheEntryRole::kIndexBlock}) {
      uint64_t bytes = 0;
      auto it =
          cached.find(rocksdb::BlockCacheEntryStatsMapKeys::UsedBytes(role));
      if (it != cached.end() && absl::SimpleAtoi(it->second, &bytes)) {
        stats.run_cached_bytes += bytes;
      }
    }
  }
  return stats;
}

EventLog::MemoryUse EventLog::memory_use() const {
  MemoryUse use;
  uint64_t value = 0;
  if (db_->GetAggregatedIntProperty("rocksdb.size-all-mem-tables", &value)) {
    use.memtables = value;
  }
  if (db_->GetAggregatedIntProperty("rocksdb.estimate-table-readers-mem",
                                    &value)) {
    use.table_readers = value;
  }
  if (db_->GetIntProperty("rocksdb.block-cache-usage", &value)) {
    use.block_cache = value;
  }
  // Not id_index_stats(): an append retrying a write on a full disk holds
  // the index's lock, and a scrape must not wait for it.
  use.id_tables = id_table_bytes_.load(std::memory_order_relaxed);
  if (const std::shared_ptr<const IdFilterParts> parts = id_filter()) {
    for (const std::shared_ptr<IdFilter>& part : *parts) {
      use.id_filter += part->MemoryBytes();
    }
  }
  return use;
}

void EventLog::AwaitIdRuns() const {
  if (!run_writer_.joinable()) return;  // read-only: nothing writes runs
  absl::MutexLock lock(&index_mu_);
  index_mu_.Await(absl::Condition(
      +[](const EventLog* log) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return log->stop_writer_ ||
               (!log->filter_due_ && log->Unwritten() == nullptr);
      },
      this));
}

std::pair<size_t, size_t> EventLog::IdTablesInMemory() const {
  size_t ids = 0;
  size_t bytes = 0;
  if (active_ != nullptr) {
    ids += active_->size();
    bytes += active_->MemoryBytes();
  }
  for (const auto& frozen : frozen_) {
    if (frozen->written) continue;  // dropped at the next append
    ids += frozen->table->size();
    bytes += frozen->table->MemoryBytes();
  }
  return {ids, bytes};
}

size_t EventLog::UnwrittenTables() const {
  if (!run_writer_.joinable()) return 0;  // read-only, or still opening
  size_t n = 0;
  for (const auto& frozen : frozen_) n += frozen->written ? 0 : 1;
  return n;
}

std::shared_ptr<EventLog::FrozenTable> EventLog::Unwritten() const {
  for (const auto& frozen : frozen_) {
    if (!frozen->written) return frozen;
  }
  return nullptr;
}

absl::Status EventLog::SyncWal() {
  if (!options_.sync || options_.read_only) return absl::OkStatus();
  return FromRocks(db_->SyncWAL(), "syncing the write-ahead log");
}

absl::Status EventLog::ResolveAmendment(
    const okrd::v1::KpiEvent& event, const AppendResult& batch, uint64_t before,
    const absl::flat_hash_map<std::string, okrd::v1::AmendmentState>& amended,
    okrd::v1::Amendment* amendment, std::string* reason,
    std::string* detail) const {
  const std::string& target_id = event.corrects_event_id();
  std::optional<okrd::v1::StoredEvent> loaded;
  const okrd::v1::StoredEvent* target = nullptr;
  absl::StatusOr<std::optional<uint64_t>> sequence = FindId(target_id);
  if (!sequence.ok()) return sequence.status();
  if (sequence->has_value() && **sequence > before) {
    // In this batch, which holds no tick before its events.
    target = batch.appended[**sequence - before - 1];
  } else if (sequence->has_value()) {
    absl::StatusOr<std::optional<okrd::v1::StoredEvent>> got = Get(**sequence);
    if (!got.ok()) return got.status();
    loaded = std::move(*got);
    if (loaded) target = &*loaded;
  }
  if (target == nullptr) {
    *reason = "unknown_correction_target";
    *detail = absl::StrCat("corrects_event_id \"", target_id,
                           "\" is not a logged event");
    return absl::OkStatus();
  }
  const okrd::v1::KpiEvent& original = target->event();
  if (Amends(original)) {
    *reason = "invalid_correction_target";
    *detail = absl::StrCat("\"", target_id,
                           "\" is itself a correction or retraction; amend "
                           "the original measurement");
    return absl::OkStatus();
  }
  if (original.kpi() != event.kpi() || original.subject() != event.subject()) {
    *reason = "invalid_correction_target";
    *detail = absl::StrCat("\"", target_id, "\" measures ", original.kpi(), "/",
                           original.subject(), ", not ", event.kpi(), "/",
                           event.subject());
    return absl::OkStatus();
  }
  okrd::v1::AmendmentState state;
  state.set_value(original.value());
  if (auto it = amended.find(target_id); it != amended.end()) {
    state = it->second;
  } else {
    std::string stored;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kAmendments],
                                 target_id, &stored);
    if (s.ok()) {
      if (!state.ParseFromString(stored)) {
        return absl::DataLossError("amendment state does not parse");
      }
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "amendment lookup");
    }
  }
  if (state.retracted()) {
    *reason = "retracted_target";
    *detail = absl::StrCat("\"", target_id, "\" was already retracted");
    return absl::OkStatus();
  }
  amendment->set_target_sequence(target->sequence());
  *amendment->mutable_target_event_time() = original.event_time();
  amendment->set_previous_value(state.value());
  return absl::OkStatus();
}

absl::Status EventLog::ForEach(
    uint64_t from,
    const std::function<bool(const okrd::v1::StoredEvent&)>& fn) const {
  return Scan(
      [&](const RawRecordFn& raw) {
        return ForEachRecord(from, ScanOptions(), raw);
      },
      "event log record", fn);
}

absl::Status EventLog::ForEachRejected(
    uint64_t from,
    const std::function<bool(const okrd::v1::RejectedRecord&)>& fn) const {
  return Scan(
      [&](const RawRecordFn& raw) {
        bool stopped = false;
        return ReadRecords(db_.get(), handles_[kRejected], ScanOptions(),
                           /*blocks=*/false, from, "rejected record", raw,
                           &stopped);
      },
      "rejected record", fn);
}

absl::StatusOr<std::optional<okrd::v1::StoredEvent>> EventLog::Get(
    uint64_t sequence) const {
  std::optional<okrd::v1::StoredEvent> record;
  bool parsed = true;
  absl::Status s =
      ForEachRecord(sequence, rocksdb::ReadOptions(),
                    [&](uint64_t found, absl::string_view bytes) {
                      if (found == sequence) {
                        parsed = record.emplace().ParseFromArray(
                            bytes.data(), static_cast<int>(bytes.size()));
                      }
                      return false;
                    });
  if (!s.ok()) return s;
  if (!parsed) {
    return absl::DataLossError(
        absl::StrCat("event log record ", sequence, " does not parse"));
  }
  return record;
}

absl::StatusOr<std::optional<okrd::v1::StoredEvent>> EventLog::GetByEventId(
    const std::string& event_id) const {
  if (absl::Status s = EnsureIdIndex(); !s.ok()) return s;
  absl::StatusOr<std::optional<uint64_t>> sequence;
  {
    absl::ReaderMutexLock lock(&index_mu_);
    sequence = FindId(event_id);
  }
  if (!sequence.ok()) return sequence.status();
  if (!sequence->has_value()) return std::nullopt;
  return Get(**sequence);
}

absl::Status EventLog::PutSnapshot(
    const okrd::v1::ProjectionSnapshot& snapshot) {
  if (options_.read_only) {
    return absl::FailedPreconditionError("event log is open read-only");
  }
  absl::StatusOr<DroppedSnapshots> dropped = SnapshotsToDrop();
  if (!dropped.ok()) return dropped.status();
  const uint64_t sequence = snapshot.sequence();
  const std::string path = (std::filesystem::path(options_.path) /
                            absl::StrCat(kSnapshotFilePrefix, sequence, ".sst"))
                               .string();
  auto failed = [&](const rocksdb::Status& s, absl::string_view what) {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    return FromRocks(s, what);
  };
  rocksdb::SstFileWriter writer(
      rocksdb::EnvOptions(),
      rocksdb::Options(rocksdb::DBOptions(), BaseOptions(nullptr)),
      handles_[kSnapshots]);
  if (rocksdb::Status s = writer.Open(path); !s.ok()) {
    return failed(s, "opening a snapshot file");
  }
  // The file also drops the snapshots no longer kept, in key order with the
  // rest: nothing goes through the memtable, whose flush every snapshot
  // would otherwise force, one more level-0 file each.
  rocksdb::Status s;
  for (uint64_t old : dropped->whole) {
    if (s.ok()) s = writer.DeleteRange(EncodeU64(old), EncodeU64(old + 1));
  }
  for (uint64_t old : dropped->chunked) {
    if (s.ok()) {
      s = writer.DeleteRange(SnapshotChunkPrefix(old),
                             SnapshotChunkPrefix(old + 1));
    }
  }
  if (!s.ok()) return failed(s, "writing a snapshot");
  okrd::v1::SnapshotEntry entry;
  entry.set_sequence(sequence);
  entry.set_config_hash(snapshot.config_hash());
  ChunkOutputStream chunks(&writer, sequence);
  if (!snapshot.SerializeToZeroCopyStream(&chunks) || !chunks.Flush()) {
    return failed(chunks.status().ok()
                      ? rocksdb::Status::Corruption("snapshot not serializable")
                      : chunks.status(),
                  "writing a snapshot");
  }
  entry.set_chunks(chunks.chunks());
  entry.set_bytes(chunks.bytes());
  // "m" sorts after "c": the entries come last, the new one after the
  // dropped ones.
  for (uint64_t old : dropped->chunked) {
    if (s.ok()) s = writer.Delete(SnapshotEntryKey(old));
  }
  if (s.ok()) {
    s = writer.Put(SnapshotEntryKey(sequence), entry.SerializeAsString());
  }
  if (s.ok()) s = writer.Finish();
  if (!s.ok()) return failed(s, "writing a snapshot");
  // Never ahead of the log: the records it covers are durable first, even
  // without a sync per batch.
  if (!options_.sync) {
    if (s = db_->FlushWAL(/*sync=*/true); !s.ok()) {
      return failed(s, "syncing the write-ahead log");
    }
  }
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;
  if (s = db_->IngestExternalFile(handles_[kSnapshots], {path}, ingest);
      !s.ok()) {
    return failed(s, "ingesting a snapshot");
  }
  return absl::OkStatus();
}

absl::StatusOr<EventLog::DroppedSnapshots> EventLog::SnapshotsToDrop() const {
  rocksdb::ReadOptions read;
  read.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(read, handles_[kSnapshots]));
  // Newest first, counting the one being added: entries of chunked
  // snapshots, then whole ones as earlier logs stored them (key: the bare
  // sequence, which sorts before "c").
  DroppedSnapshots dropped;
  int kept = 1;
  for (it->SeekForPrev(SnapshotEntryKey(UINT64_MAX));
       it->Valid() && it->key().starts_with("m"); it->Prev()) {
    if (++kept <= kKeptSnapshots) continue;
    dropped.chunked.push_back(DecodeU64(it->key().ToString().substr(1)));
  }
  for (it->SeekForPrev("c"); it->Valid() && it->key().size() == 8; it->Prev()) {
    if (++kept > kKeptSnapshots) {
      dropped.whole.push_back(DecodeU64(it->key().ToString()));
    }
  }
  if (absl::Status s = FromRocks(it->status(), "listing snapshots"); !s.ok()) {
    return s;
  }
  // In key order, as the file takes them.
  std::sort(dropped.chunked.begin(), dropped.chunked.end());
  std::sort(dropped.whole.begin(), dropped.whole.end());
  return dropped;
}

absl::StatusOr<std::optional<okrd::v1::ProjectionSnapshot>>
EventLog::LatestSnapshot(const std::string& config_hash) const {
  rocksdb::ReadOptions read;
  read.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(read, handles_[kSnapshots]));
  std::unique_ptr<rocksdb::Iterator> chunks(
      db_->NewIterator(read, handles_[kSnapshots]));
  const uint64_t last = last_sequence();
  // A snapshot is trusted only up to what the log holds.
  auto usable = [&](uint64_t sequence) {
    if (sequence <= last) return true;
    spdlog::warn(
        "projection snapshot at sequence {} is past the log's last sequence "
        "{}; not used",
        sequence, last);
    return false;
  };
  okrd::v1::ProjectionSnapshot snapshot;
  for (it->SeekForPrev(SnapshotEntryKey(UINT64_MAX));
       it->Valid() && it->key().starts_with("m"); it->Prev()) {
    okrd::v1::SnapshotEntry entry;
    if (!entry.ParseFromArray(it->value().data(),
                              static_cast<int>(it->value().size())) ||
        entry.config_hash() != config_hash || !usable(entry.sequence())) {
      continue;
    }
    ChunkInputStream in(chunks.get(), entry.sequence(), entry.chunks());
    if (snapshot.ParseFromZeroCopyStream(&in) && in.complete() &&
        static_cast<uint64_t>(in.ByteCount()) == entry.bytes() &&
        snapshot.sequence() == entry.sequence()) {
      return snapshot;
    }
    // Only costs a longer replay.
    spdlog::warn("projection snapshot at sequence {} is unreadable; not used",
                 entry.sequence());
  }
  for (it->SeekForPrev("c"); it->Valid() && it->key().size() == 8; it->Prev()) {
    if (!snapshot.ParseFromArray(it->value().data(),
                                 static_cast<int>(it->value().size()))) {
      continue;  // an unreadable snapshot only costs a longer replay
    }
    if (snapshot.config_hash() == config_hash && usable(snapshot.sequence())) {
      return snapshot;
    }
  }
  for (const auto* i : {it.get(), chunks.get()}) {
    if (absl::Status s = FromRocks(i->status(), "reading snapshots"); !s.ok()) {
      return s;
    }
  }
  return std::nullopt;
}

std::map<PartitionKey, int64_t> EventLog::Offsets() const {
  absl::MutexLock lock(&mu_);
  return stats_.offsets;
}

Stats EventLog::GetStats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

uint64_t EventLog::last_sequence() const {
  absl::MutexLock lock(&mu_);
  return stats_.last_sequence;
}

}  // namespace okrd::eventlog
