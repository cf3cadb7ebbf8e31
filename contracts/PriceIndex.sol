// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @notice The membership part of EnterpriseRegistry that PriceIndex relies on.
interface IPublisherRegistry {
    function hasRole(address account, uint32 role) external view returns (bool);
}

/// @title PriceIndex
/// @notice Daily prices of steel grades per currency, posted on chain by price publishers, so that the
/// collateral value of goods (net weight x the grade's price) can be recomputed by anyone at any day.
///
/// * **Who publishes.** Only an active enterprise of the EnterpriseRegistry holding `PRICE_PUBLISHER`
///   (128). A deactivated publisher publishes nothing more; what it published stays part of the history.
/// * **What a price is.** Keyed by grade = `keccak256(utf8 grade name)` (e.g. `keccak256("S355MC")`,
///   exact spelling), currency = ISO 4217 alphabetic code as 3 ASCII bytes (`"CNY"`), day = Unix day
///   (`floor(unix seconds / 86400)`, UTC). The price is in the currency's minor unit (fen, cents) per
///   tonne (1000 kg), 1 .. `MAX_PRICE`.
/// * **One transaction per day's list.** `publish(day, grades, currencies, prices)` posts up to
///   `MAX_ENTRIES` (grade, currency) prices of one day, all or nothing. The day may be at most
///   `MAX_DAYS_AHEAD` (1) after the chain's current day (a publisher east of UTC posts its local day).
/// * **Series grow forward.** Each (grade, currency) series is append-only in day order: a day before
///   the series' latest published day cannot be added later (`DayBeforeLatest`), so a gap that
///   valuations already carried the previous price across cannot be filled in afterwards.
/// * **Correction rule.** A day's price belongs to the publisher that posted it first: nobody else can
///   overwrite it (`PriceOwnedByOther`). Its publisher may correct it **once**
///   (`AlreadyCorrected`), by publishing the same day again with another price, until
///   `CORRECTION_WINDOW_DAYS` (7) days after that day (`CorrectionWindowClosed`). The correction keeps
///   history: the first price stays readable (`priceOn(...).originalPrice`) and `PriceCorrected` carries
///   both. Re-posting the identical price is a no-op (a retried transaction changes nothing).
/// * **Reading.** `priceAt(grade, currency, day)` is the latest price on or before `day` (binary
///   search over the series; zeros when none); `priceOn` the exact day's record with its history;
///   `publishedDays` the series' days within a range, `pricesBetween` those days with their records.
/// * Refused with named custom errors (never a Panic).
contract PriceIndex {
    /// @notice EnterpriseRegistry role flag of a price publisher.
    uint32 public constant PRICE_PUBLISHER = 128;
    uint256 public constant SECONDS_PER_DAY = 86400;
    /// @notice How many days after the chain's current (UTC) day a list may be dated.
    uint64 public constant MAX_DAYS_AHEAD = 1;
    /// @notice A publisher may correct its price of day d until day d + CORRECTION_WINDOW_DAYS (inclusive).
    uint64 public constant CORRECTION_WINDOW_DAYS = 7;
    /// @notice Most (grade, currency) prices in one day's list.
    uint256 public constant MAX_ENTRIES = 64;
    /// @notice Largest price per tonne in minor units (2^128 - 1): weight in kg x price stays below 2^192.
    uint256 public constant MAX_PRICE = type(uint128).max;

    /// One day's price of one (grade, currency) series (three storage slots, the third written only by a
    /// correction).
    struct Price {
        /// current price per tonne in minor currency units (0 = no price that day)
        uint128 price;
        /// the price as first published (equal to `price` unless corrected)
        uint128 originalPrice;
        address publisher;
        /// block of the first publication (its PricePublished event is there)
        uint64 publishedBlock;
        /// block of the correction (its PriceCorrected event), 0 unless corrected
        uint64 correctedBlock;
    }

    IPublisherRegistry private immutable _registry;
    /// series key keccak256(grade, currency) => published days, ascending
    mapping(bytes32 => uint64[]) private _days;
    /// series key => day => price
    mapping(bytes32 => mapping(uint64 => Price)) private _prices;
    /// grade => currencies it has a series in, in order of first publication
    mapping(bytes32 => bytes3[]) private _currencies;

    event PricePublished(uint64 indexed day, bytes32 indexed grade, bytes3 currency, uint256 price, address publisher);
    event PriceCorrected(
        uint64 indexed day, bytes32 indexed grade, bytes3 currency, uint256 previousPrice, uint256 price, address publisher
    );

    error ZeroAddress();
    error NotPricePublisher(address account);
    error LengthMismatch(uint256 grades, uint256 currencies, uint256 prices);
    error EmptyPriceList();
    error TooManyPrices(uint256 count, uint256 maxCount);
    error DayOutOfRange(uint64 day, uint64 latestAllowed);
    error ZeroGrade();
    error InvalidCurrency(bytes3 currency);
    error ZeroPrice(bytes32 grade, bytes3 currency);
    error PriceTooLarge(bytes32 grade, bytes3 currency, uint256 price);
    error DuplicateEntry(bytes32 grade, bytes3 currency);
    error DayBeforeLatest(bytes32 grade, bytes3 currency, uint64 day, uint64 latestDay);
    error PriceOwnedByOther(bytes32 grade, bytes3 currency, uint64 day, address publisher);
    error AlreadyCorrected(bytes32 grade, bytes3 currency, uint64 day);
    error CorrectionWindowClosed(bytes32 grade, bytes3 currency, uint64 day, uint64 lastCorrectionDay);

    constructor(address registry) {
        if (registry == address(0)) revert ZeroAddress();
        _registry = IPublisherRegistry(registry);
    }

    /// @notice The EnterpriseRegistry holding publishers and their roles.
    function enterpriseRegistry() external view returns (address) {
        return address(_registry);
    }

    // -------------------------------------------------------------- publishing
    /// @notice Post (or correct, see the correction rule) the prices of `day` for each
    /// (grades[i], currencies[i]) as pricesPerTonneMinor[i]; all or nothing.
    function publish(
        uint64 day,
        bytes32[] calldata grades,
        bytes3[] calldata currencies,
        uint256[] calldata pricesPerTonneMinor
    ) external {
        if (!_registry.hasRole(msg.sender, PRICE_PUBLISHER)) revert NotPricePublisher(msg.sender);
        uint256 n = grades.length;
        if (currencies.length != n || pricesPerTonneMinor.length != n) {
            revert LengthMismatch(n, currencies.length, pricesPerTonneMinor.length);
        }
        if (n == 0) revert EmptyPriceList();
        if (n > MAX_ENTRIES) revert TooManyPrices(n, MAX_ENTRIES);
        uint64 today = currentDay();
        if (day == 0 || day > today + MAX_DAYS_AHEAD) revert DayOutOfRange(day, today + MAX_DAYS_AHEAD);
        for (uint256 i = 0; i < n; ++i) {
            bytes32 grade = grades[i];
            bytes3 currency = currencies[i];
            uint256 price = pricesPerTonneMinor[i];
            if (grade == bytes32(0)) revert ZeroGrade();
            if (!_validCurrency(currency)) revert InvalidCurrency(currency);
            if (price == 0) revert ZeroPrice(grade, currency);
            if (price > MAX_PRICE) revert PriceTooLarge(grade, currency, price);
            for (uint256 j = 0; j < i; ++j) {
                if (grades[j] == grade && currencies[j] == currency) revert DuplicateEntry(grade, currency);
            }
            _post(day, today, grade, currency, price);
        }
    }

    // ------------------------------------------------------------------ views
    /// @notice The latest price of (grade, currency) on or before `day`: its price per tonne (minor
    /// units), the day it was published for and its publisher; (0, 0, address(0)) when there is none.
    function priceAt(bytes32 grade, bytes3 currency, uint64 day)
        external
        view
        returns (uint256 price, uint64 publishedDay, address publisher)
    {
        bytes32 key = seriesKey(grade, currency);
        uint64[] storage list = _days[key];
        // first index whose day is > `day`
        uint256 lo = 0;
        uint256 hi = list.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (list[mid] <= day) lo = mid + 1;
            else hi = mid;
        }
        if (lo == 0) return (0, 0, address(0));
        publishedDay = list[lo - 1];
        Price storage p = _prices[key][publishedDay];
        return (p.price, publishedDay, p.publisher);
    }

    /// @notice The record of exactly `day` (all zero when nothing was published for that day).
    function priceOn(bytes32 grade, bytes3 currency, uint64 day) external view returns (Price memory) {
        return _prices[seriesKey(grade, currency)][day];
    }

    /// @notice Days of the (grade, currency) series within [fromDay, toDay], ascending.
    function publishedDays(bytes32 grade, bytes3 currency, uint64 fromDay, uint64 toDay)
        public
        view
        returns (uint64[] memory out)
    {
        uint64[] storage list = _days[seriesKey(grade, currency)];
        uint256 start = 0;
        uint256 end = list.length;
        // first index with day >= fromDay
        uint256 hi = end;
        while (start < hi) {
            uint256 mid = (start + hi) / 2;
            if (list[mid] < fromDay) start = mid + 1;
            else hi = mid;
        }
        // first index with day > toDay
        uint256 lo = start;
        while (lo < end) {
            uint256 mid = (lo + end) / 2;
            if (list[mid] <= toDay) lo = mid + 1;
            else end = mid;
        }
        uint256 count = end > start ? end - start : 0;
        out = new uint64[](count);
        for (uint256 i = 0; i < count; ++i) out[i] = list[start + i];
    }

    /// @notice The (grade, currency) series within [fromDay, toDay]: its days ascending and each day's record.
    function pricesBetween(bytes32 grade, bytes3 currency, uint64 fromDay, uint64 toDay)
        external
        view
        returns (uint64[] memory publishedOn, Price[] memory prices)
    {
        publishedOn = publishedDays(grade, currency, fromDay, toDay);
        bytes32 key = seriesKey(grade, currency);
        prices = new Price[](publishedOn.length);
        for (uint256 i = 0; i < publishedOn.length; ++i) prices[i] = _prices[key][publishedOn[i]];
    }

    /// @notice How many days the (grade, currency) series has.
    function seriesLength(bytes32 grade, bytes3 currency) external view returns (uint256) {
        return _days[seriesKey(grade, currency)].length;
    }

    /// @notice Currencies `grade` has prices in, in order of first publication.
    function currenciesOf(bytes32 grade) external view returns (bytes3[] memory) {
        return _currencies[grade];
    }

    /// @notice The chain's current Unix day (UTC).
    function currentDay() public view returns (uint64) {
        return uint64(block.timestamp / SECONDS_PER_DAY);
    }

    /// @notice Grade key of a grade name: keccak256 of its UTF-8 bytes.
    function gradeKey(string calldata name) external pure returns (bytes32) {
        return keccak256(bytes(name));
    }

    /// @notice Storage key of a (grade, currency) series.
    function seriesKey(bytes32 grade, bytes3 currency) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(grade, currency));
    }

    // --------------------------------------------------------------- internal
    function _post(uint64 day, uint64 today, bytes32 grade, bytes3 currency, uint256 price) private {
        bytes32 key = seriesKey(grade, currency);
        Price storage p = _prices[key][day];
        if (p.publisher == address(0)) {
            uint256 n = _days[key].length;
            if (n == 0) {
                _currencies[grade].push(currency);
            } else if (_days[key][n - 1] > day) {
                revert DayBeforeLatest(grade, currency, day, _days[key][n - 1]);
            }
            _days[key].push(day);
            p.price = uint128(price);
            p.originalPrice = uint128(price);
            p.publisher = msg.sender;
            p.publishedBlock = uint64(block.number);
            emit PricePublished(day, grade, currency, price, msg.sender);
            return;
        }
        if (p.publisher != msg.sender) revert PriceOwnedByOther(grade, currency, day, p.publisher);
        if (p.price == price) return; // the same price again: a retried list changes nothing
        if (p.correctedBlock != 0) revert AlreadyCorrected(grade, currency, day);
        if (today > day + CORRECTION_WINDOW_DAYS) {
            revert CorrectionWindowClosed(grade, currency, day, day + CORRECTION_WINDOW_DAYS);
        }
        uint256 previous = p.price;
        p.price = uint128(price);
        p.correctedBlock = uint64(block.number);
        emit PriceCorrected(day, grade, currency, previous, price, msg.sender);
    }

    function _validCurrency(bytes3 c) private pure returns (bool) {
        for (uint256 i = 0; i < 3; ++i) {
            bytes1 b = c[i];
            if (b < "A" || b > "Z") return false;
        }
        return true;
    }
}
