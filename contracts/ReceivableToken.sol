// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @notice The membership part of EnterpriseRegistry that ReceivableToken relies on.
interface IMemberRegistry {
    function isActive(address account) external view returns (bool);
    function hasRole(address account, uint32 role) external view returns (bool);
}

/// @dev ERC-165.
interface IERC165 {
    function supportsInterface(bytes4 interfaceId) external view returns (bool);
}

/// @dev ERC-721 (without the metadata extension).
interface IERC721 is IERC165 {
    event Transfer(address indexed _from, address indexed _to, uint256 indexed _tokenId);
    event Approval(address indexed _owner, address indexed _approved, uint256 indexed _tokenId);
    event ApprovalForAll(address indexed _owner, address indexed _operator, bool _approved);

    function balanceOf(address _owner) external view returns (uint256);
    function ownerOf(uint256 _tokenId) external view returns (address);
    function safeTransferFrom(address _from, address _to, uint256 _tokenId, bytes calldata data) external;
    function safeTransferFrom(address _from, address _to, uint256 _tokenId) external;
    function transferFrom(address _from, address _to, uint256 _tokenId) external;
    function approve(address _approved, uint256 _tokenId) external;
    function setApprovalForAll(address _operator, bool _approved) external;
    function getApproved(uint256 _tokenId) external view returns (address);
    function isApprovedForAll(address _owner, address _operator) external view returns (bool);
}

/// @dev ERC-3525 semi-fungible token (ERC-165 id 0xd5358140). The value-moving functions are
/// declared non-payable here: this ledger has no use for ether sent along (same selectors).
interface IERC3525 is IERC721 {
    event TransferValue(uint256 indexed _fromTokenId, uint256 indexed _toTokenId, uint256 _value);
    event ApprovalValue(uint256 indexed _tokenId, address indexed _operator, uint256 _value);
    event SlotChanged(uint256 indexed _tokenId, uint256 indexed _oldSlot, uint256 indexed _newSlot);

    function valueDecimals() external view returns (uint8);
    function balanceOf(uint256 _tokenId) external view returns (uint256);
    function slotOf(uint256 _tokenId) external view returns (uint256);
    function approve(uint256 _tokenId, address _operator, uint256 _value) external;
    function allowance(uint256 _tokenId, address _operator) external view returns (uint256);
    function transferFrom(uint256 _fromTokenId, uint256 _toTokenId, uint256 _value) external;
    function transferFrom(uint256 _fromTokenId, address _to, uint256 _value) external returns (uint256);
}

/// @dev ERC-3525 receiver hook, called when value goes to a token owned by a contract.
interface IERC3525Receiver {
    function onERC3525Received(address operator, uint256 fromTokenId, uint256 toTokenId, uint256 value, bytes calldata data)
        external
        returns (bytes4);
}

interface IERC721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4);
}

/// @title ReceivableToken
/// @notice Supply-chain receivables as ERC-3525 semi-fungible tokens.
///
/// * A core enterprise (CORE_ENTERPRISE role) confirms a payable to a member supplier: `issue`
///   mints a token whose value is the amount in the smallest currency unit (fen / cents,
///   `valueDecimals() == 2`, at most `MAX_VALUE`) against an invoice digest that can be used once only.
/// * Slot = `issuer << 96 | currency << 64 | maturity` (address 160 bits, ISO 4217 code as 3 ASCII
///   bytes, maturity in unix seconds 64 bits): value is fungible only within one issuer, currency
///   and maturity.
/// * **Only the holder moves value.** Holders split value to other members
///   (`transferFrom(tokenId, to, value)` creates a child token of at least `MIN_SPLIT_VALUE`, at most
///   `MAX_DEPTH` splits below the payable), move whole tokens (ERC-721 transfers) or move value
///   between tokens of the same payable. Operators do not exist here: ERC-721 approvals,
///   operators-for-all and ERC-3525 value allowances are refused (`OperatorsUnsupported`), so no
///   party other than the holder can move value anywhere.
/// * **Financing only through `discount`.** The holder offers value to one bank with its own terms
///   (`offerFinancing(tokenId, bank, value, maxRateBps, expiry)`); the offer can only be consumed by
///   that bank's `discount` at a rate no worse than `maxRateBps` before `expiry`, and lapses when the
///   token changes hands. `discount` moves the value into a new financed token of the bank and
///   records rate, price and the bank's payment reference in the same transaction. Financed value
///   (and everything split from it) can never be offered or discounted again. `allowance(tokenId,
///   bank)` reports the live offer.
/// * **Settlement the holder confirms.** At or after maturity the issuer marks payment of a
///   holder's token (`settle`, payment reference unique per issuer and holder); the holder confirms
///   receipt (`confirmSettlement`) or disputes it (`disputeSettlement`, within `DISPUTE_WINDOW`);
///   after the window anyone may `finalizeSettlement`. Only then is the value redeemed.
/// * **Members only.** Every state-changing function requires the caller, the holder and the
///   counterparty to be active members of the EnterpriseRegistry at the time of the call.
/// * Refused with named custom errors (never a Panic): transfers to non-members, overspending,
///   any movement after maturity or redemption, a second discount of financed value, a second
///   issue against the same invoice, worse terms than offered.
contract ReceivableToken is IERC3525 {
    uint32 public constant CORE_ENTERPRISE = 4;
    uint32 public constant BANK = 8;
    uint16 public constant MAX_RATE_BPS = 10000;
    uint256 public constant YEAR_SECONDS = 365 days;
    /// @notice Largest value of a payable (2^128 - 1): `value * rateBps * seconds` stays below 2^206.
    uint256 public constant MAX_VALUE = type(uint128).max;
    /// @notice Smallest value a split may create (1.00 in the currency): no unsolicited dust tokens.
    uint256 public constant MIN_SPLIT_VALUE = 100;
    /// @notice Deepest split chain below a confirmed payable (`chainOf` stays O(MAX_DEPTH)).
    uint16 public constant MAX_DEPTH = 32;
    /// @notice Time the holder has to dispute a payment the issuer marked, before anyone may finalize it.
    uint64 public constant DISPUTE_WINDOW = 7 days;

    struct Token {
        uint256 slot;
        uint256 balance;
        address owner;
        /// token this one was split from (0 for a confirmed payable)
        uint256 parent;
        /// the confirmed payable (root token) this value comes from
        uint256 root;
        /// value at creation
        uint256 originalValue;
        uint64 createdAt;
        uint64 createdBlock;
        bool financed;
        bool redeemed;
        /// number of splits between this token and its payable (0 for the payable)
        uint16 depth;
    }

    struct Payable {
        bytes32 invoiceDigest;
        address issuer;
        address beneficiary;
        uint256 faceValue;
        uint256 settledValue;
        uint64 issuedAt;
    }

    struct Discount {
        address bank;
        address holder;
        uint256 fromTokenId;
        uint256 value;
        uint16 rateBps;
        uint256 price;
        string paymentReference;
        uint64 timestamp;
    }

    /// A holder's financing offer to one bank (only `discount` by that bank consumes it).
    struct Offer {
        address holder;
        uint256 value;
        uint16 maxRateBps;
        uint64 expiry;
        uint64 epoch;
    }

    enum SettlementStatus {
        None,
        Marked,
        Confirmed,
        Finalized
    }

    struct Settlement {
        address holder;
        uint256 value;
        string paymentReference;
        /// time of redemption (confirmation or finalization); 0 while only marked
        uint64 timestamp;
        uint64 markedAt;
        SettlementStatus status;
    }

    IMemberRegistry private immutable _registry;
    uint256 public tokenCount;

    mapping(uint256 => Token) private _tokens;
    mapping(uint256 => Payable) private _payables;
    mapping(bytes32 => uint256) private _invoiceToken;
    mapping(uint256 => uint256[]) private _family;
    mapping(uint256 => Discount) private _discounts;
    mapping(uint256 => Settlement) private _settlements;
    /// keccak256(kind, payer, payee, reference) => used
    mapping(bytes32 => bool) private _paymentReferenceUsed;

    mapping(address => uint256[]) private _owned;
    mapping(uint256 => uint256) private _ownedIndex;
    mapping(uint256 => mapping(address => Offer)) private _offers;
    mapping(uint256 => address[]) private _offerBanks;
    mapping(uint256 => mapping(address => bool)) private _offerBankListed;
    /// bumped when a token changes hands: every earlier offer on it lapses
    mapping(uint256 => uint64) private _epoch;

    event Issued(
        uint256 indexed tokenId, address indexed issuer, address indexed beneficiary, bytes32 invoiceDigest,
        uint256 value, uint256 slot
    );
    event Split(uint256 indexed fromTokenId, uint256 indexed toTokenId, address indexed to, uint256 value);
    event Discounted(
        uint256 indexed tokenId, uint256 indexed fromTokenId, address indexed bank, address holder, uint256 value,
        uint16 rateBps, uint256 price, string paymentReference
    );
    event FinancingOffered(
        uint256 indexed tokenId, address indexed holder, address indexed bank, uint256 value, uint16 maxRateBps,
        uint64 expiry
    );
    event SettlementMarked(uint256 indexed tokenId, address indexed issuer, address indexed holder, uint256 value,
        string paymentReference);
    event SettlementDisputed(uint256 indexed tokenId, address indexed holder, string paymentReference, string reason);
    event Settled(uint256 indexed tokenId, address indexed holder, uint256 value, string paymentReference);

    error ZeroAddress();
    error UnknownToken(uint256 tokenId);
    error NotCoreEnterprise(address account);
    error NotBank(address account);
    error NotMember(address account);
    error NotIssuer(address account, address issuer);
    error NotHolder(address account, address holder);
    error NotAuthorized(address caller, uint256 tokenId);
    error OperatorsUnsupported();
    error ZeroValue();
    error ValueTooLarge(uint256 value, uint256 maxValue);
    error SplitTooSmall(uint256 value, uint256 minValue);
    error SplitTooDeep(uint256 tokenId, uint16 depth);
    error ZeroInvoiceDigest();
    error InvalidCurrency(bytes3 currency);
    error MaturityInPast(uint64 maturity, uint256 nowSeconds);
    error InvoiceAlreadyIssued(bytes32 invoiceDigest, uint256 tokenId);
    error InsufficientBalance(uint256 tokenId, uint256 balance, uint256 value);
    error InsufficientAllowance(uint256 tokenId, address operator, uint256 allowance, uint256 value);
    error Matured(uint256 tokenId, uint64 maturity);
    error NotMatured(uint256 tokenId, uint64 maturity);
    error Redeemed(uint256 tokenId);
    error AlreadyDiscounted(uint256 tokenId);
    error SlotMismatch(uint256 fromTokenId, uint256 toTokenId);
    error InvalidRate(uint16 rateBps);
    error RateAboveOffer(uint16 rateBps, uint16 maxRateBps);
    error InvalidExpiry(uint64 expiry, uint64 maturity);
    error OfferExpired(uint256 tokenId, uint64 expiry);
    error DiscountExceedsValue(uint16 rateBps, uint256 secondsToMaturity);
    error EmptyPaymentReference();
    error PaymentReferenceUsed(string paymentReference);
    error NothingToSettle(uint256 tokenId);
    error SettlementPending(uint256 tokenId);
    error NoSettlementMarked(uint256 tokenId);
    error DisputeWindowOpen(uint256 tokenId, uint64 until);
    error DisputeWindowClosed(uint256 tokenId, uint64 closedAt);
    error SelfApproval(address owner);
    error NotReceiver(address to);
    error WrongOwner(uint256 tokenId, address owner, address from);

    constructor(address registry) {
        if (registry == address(0)) revert ZeroAddress();
        _registry = IMemberRegistry(registry);
    }

    function enterpriseRegistry() external view returns (address) {
        return address(_registry);
    }

    // ------------------------------------------------------------ ERC-165
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IERC165).interfaceId || interfaceId == type(IERC721).interfaceId
            || interfaceId == type(IERC3525).interfaceId;
    }

    // ------------------------------------------------------------ slot helpers
    /// @notice Slot of (issuer, ISO 4217 currency, maturity unix seconds).
    function slotFor(address issuer, bytes3 currency, uint64 maturity) public pure returns (uint256) {
        return (uint256(uint160(issuer)) << 96) | (uint256(uint24(currency)) << 64) | uint256(maturity);
    }

    function slotIssuer(uint256 slot) public pure returns (address) {
        return address(uint160(slot >> 96));
    }

    function slotCurrency(uint256 slot) public pure returns (bytes3) {
        return bytes3(uint24(slot >> 64));
    }

    function slotMaturity(uint256 slot) public pure returns (uint64) {
        return uint64(slot);
    }

    // ------------------------------------------------------------ business
    /// @notice Confirm a payable of `value` (smallest currency unit, 1..MAX_VALUE) to member `to`,
    /// maturing at `maturity` (unix seconds), against `invoiceDigest` (once only). Caller: an active
    /// core enterprise.
    function issue(address to, bytes3 currency, uint64 maturity, uint256 value, bytes32 invoiceDigest)
        external
        returns (uint256 tokenId)
    {
        if (!_registry.hasRole(msg.sender, CORE_ENTERPRISE)) revert NotCoreEnterprise(msg.sender);
        _member(to);
        if (invoiceDigest == bytes32(0)) revert ZeroInvoiceDigest();
        uint256 existing = _invoiceToken[invoiceDigest];
        if (existing != 0) revert InvoiceAlreadyIssued(invoiceDigest, existing);
        if (value == 0) revert ZeroValue();
        if (value > MAX_VALUE) revert ValueTooLarge(value, MAX_VALUE);
        for (uint256 i = 0; i < 3; ++i) {
            if (currency[i] < "A" || currency[i] > "Z") revert InvalidCurrency(currency);
        }
        if (maturity <= block.timestamp) revert MaturityInPast(maturity, block.timestamp);

        uint256 slot = slotFor(msg.sender, currency, maturity);
        tokenId = _mint(to, slot, value, 0, 0, false, 0);
        _invoiceToken[invoiceDigest] = tokenId;
        _payables[tokenId] = Payable({
            invoiceDigest: invoiceDigest,
            issuer: msg.sender,
            beneficiary: to,
            faceValue: value,
            settledValue: 0,
            issuedAt: uint64(block.timestamp)
        });
        emit TransferValue(0, tokenId, value);
        emit Issued(tokenId, msg.sender, to, invoiceDigest, value, slot);
    }

    /// @notice The holder offers up to `value` of its unfinanced token `tokenId` to `bank` (an active
    /// BANK) at an annual rate of at most `maxRateBps`, valid until `expiry` (unix seconds, after now
    /// and at most the maturity). `value == 0` withdraws the offer. Replaces any earlier offer to
    /// the same bank. Only `discount` by that bank consumes it; it lapses when the token changes hands.
    function offerFinancing(uint256 tokenId, address bank, uint256 value, uint16 maxRateBps, uint64 expiry)
        external
    {
        Token storage t = _movable(tokenId);
        _holder(t);
        if (bank == t.owner) revert SelfApproval(bank);
        if (bank == address(0)) revert ZeroAddress();
        if (t.financed) revert AlreadyDiscounted(tokenId);
        if (value != 0) {
            if (!_registry.hasRole(bank, BANK)) revert NotBank(bank);
            if (maxRateBps > MAX_RATE_BPS) revert InvalidRate(maxRateBps);
            uint64 maturity = uint64(t.slot);
            if (expiry <= block.timestamp || expiry > maturity) revert InvalidExpiry(expiry, maturity);
            if (value > t.balance) revert InsufficientBalance(tokenId, t.balance, value);
        }
        _offers[tokenId][bank] =
            Offer({holder: t.owner, value: value, maxRateBps: maxRateBps, expiry: expiry, epoch: _epoch[tokenId]});
        if (!_offerBankListed[tokenId][bank]) {
            _offerBankListed[tokenId][bank] = true;
            _offerBanks[tokenId].push(bank);
        }
        emit ApprovalValue(tokenId, bank, value);
        emit FinancingOffered(tokenId, t.owner, bank, value, maxRateBps, expiry);
    }

    /// @notice Discount `value` of `fromTokenId` offered to the calling bank by its holder, at
    /// `rateBps` (at most the offer's `maxRateBps`, before its expiry): the value moves into a new
    /// financed token of the bank; the rate (basis points per year), the price paid
    /// (`value - value * rateBps * secondsToMaturity / (10000 * 365 days)`, rounded down discount;
    /// refused with `DiscountExceedsValue` when rate x time exceeds 100 %) and the bank's payment
    /// reference (unique among the bank's discounts) are recorded in the same transaction.
    function discount(uint256 fromTokenId, uint256 value, uint16 rateBps, string calldata paymentReference)
        external
        returns (uint256 tokenId)
    {
        if (!_registry.hasRole(msg.sender, BANK)) revert NotBank(msg.sender);
        Token storage from = _movable(fromTokenId);
        if (from.financed) revert AlreadyDiscounted(fromTokenId);
        if (rateBps > MAX_RATE_BPS) revert InvalidRate(rateBps);
        address holder = from.owner;
        if (holder == msg.sender) revert NotAuthorized(msg.sender, fromTokenId);
        _member(holder);
        if (value == 0) revert ZeroValue();
        if (value > from.balance) revert InsufficientBalance(fromTokenId, from.balance, value);
        Offer storage o = _offers[fromTokenId][msg.sender];
        uint256 offered = _liveOffer(fromTokenId, from, o);
        if (offered == 0) revert NotAuthorized(msg.sender, fromTokenId);
        if (block.timestamp >= o.expiry) revert OfferExpired(fromTokenId, o.expiry);
        if (rateBps > o.maxRateBps) revert RateAboveOffer(rateBps, o.maxRateBps);
        if (value > offered) revert InsufficientAllowance(fromTokenId, msg.sender, offered, value);
        uint256 price = discountPrice(value, rateBps, uint64(from.slot) - block.timestamp);
        _useReference("discount", msg.sender, address(0), paymentReference);
        o.value = offered - value;
        emit ApprovalValue(fromTokenId, msg.sender, o.value);

        tokenId = _split(fromTokenId, from, msg.sender, value, true);
        _discounts[tokenId] = Discount({
            bank: msg.sender,
            holder: holder,
            fromTokenId: fromTokenId,
            value: value,
            rateBps: rateBps,
            price: price,
            paymentReference: paymentReference,
            timestamp: uint64(block.timestamp)
        });
        emit Discounted(tokenId, fromTokenId, msg.sender, holder, value, rateBps, price, paymentReference);
    }

    /// @notice Price of `value` discounted at `rateBps` per year for `secondsToMaturity` seconds.
    /// Bounds: value <= MAX_VALUE (2^128 - 1), rateBps <= 10000, secondsToMaturity < 2^64, so the
    /// product stays below 2^206; reverts `DiscountExceedsValue` when the discount would exceed the value
    /// (rate x time above 100 %).
    function discountPrice(uint256 value, uint16 rateBps, uint256 secondsToMaturity) public pure returns (uint256) {
        if (value > MAX_VALUE) revert ValueTooLarge(value, MAX_VALUE);
        if (rateBps > MAX_RATE_BPS) revert InvalidRate(rateBps);
        if (secondsToMaturity > type(uint64).max) revert DiscountExceedsValue(rateBps, secondsToMaturity);
        if (uint256(rateBps) * secondsToMaturity > uint256(MAX_RATE_BPS) * YEAR_SECONDS) {
            revert DiscountExceedsValue(rateBps, secondsToMaturity);
        }
        return value - (value * rateBps * secondsToMaturity) / (uint256(MAX_RATE_BPS) * YEAR_SECONDS);
    }

    /// @notice At or after maturity the issuer marks payment of a holder's whole value with its
    /// payment reference (unique per issuer and holder). The value is redeemed only when the holder
    /// confirms (`confirmSettlement`) or `DISPUTE_WINDOW` passes without a dispute.
    function settle(uint256 tokenId, string calldata paymentReference) external {
        Token storage t = _existing(tokenId);
        address issuer = slotIssuer(t.slot);
        if (msg.sender != issuer) revert NotIssuer(msg.sender, issuer);
        _member(issuer);
        if (t.redeemed) revert Redeemed(tokenId);
        uint64 maturity = uint64(t.slot);
        if (block.timestamp < maturity) revert NotMatured(tokenId, maturity);
        uint256 value = t.balance;
        if (value == 0) revert NothingToSettle(tokenId);
        Settlement storage st = _settlements[tokenId];
        if (st.status == SettlementStatus.Marked) revert SettlementPending(tokenId);
        _useReference("settle", issuer, t.owner, paymentReference);
        st.holder = t.owner;
        st.value = value;
        st.paymentReference = paymentReference;
        st.timestamp = 0;
        st.markedAt = uint64(block.timestamp);
        st.status = SettlementStatus.Marked;
        emit SettlementMarked(tokenId, issuer, t.owner, value, paymentReference);
    }

    /// @notice The holder confirms it received the payment the issuer marked: the value is redeemed.
    function confirmSettlement(uint256 tokenId) external {
        Token storage t = _existing(tokenId);
        _holder(t);
        Settlement storage st = _settlements[tokenId];
        if (st.status != SettlementStatus.Marked) revert NoSettlementMarked(tokenId);
        _redeem(tokenId, t, st, SettlementStatus.Confirmed);
    }

    /// @notice The holder says the marked payment did not arrive (within `DISPUTE_WINDOW`): the mark is
    /// cleared (its reference stays used) and the issuer must mark a new payment.
    function disputeSettlement(uint256 tokenId, string calldata reason) external {
        Token storage t = _existing(tokenId);
        _holder(t);
        Settlement storage st = _settlements[tokenId];
        if (st.status != SettlementStatus.Marked) revert NoSettlementMarked(tokenId);
        uint64 closes = st.markedAt + DISPUTE_WINDOW;
        if (block.timestamp >= closes) revert DisputeWindowClosed(tokenId, closes);
        st.status = SettlementStatus.None;
        emit SettlementDisputed(tokenId, t.owner, st.paymentReference, reason);
    }

    /// @notice After `DISPUTE_WINDOW` without a dispute any member may finalize a marked payment.
    function finalizeSettlement(uint256 tokenId) external {
        Token storage t = _existing(tokenId);
        _member(msg.sender);
        Settlement storage st = _settlements[tokenId];
        if (st.status != SettlementStatus.Marked) revert NoSettlementMarked(tokenId);
        uint64 closes = st.markedAt + DISPUTE_WINDOW;
        if (block.timestamp < closes) revert DisputeWindowOpen(tokenId, closes);
        _redeem(tokenId, t, st, SettlementStatus.Finalized);
    }

    // ------------------------------------------------------------ ERC-3525
    function valueDecimals() external pure returns (uint8) {
        return 2;
    }

    function balanceOf(uint256 tokenId) external view returns (uint256) {
        return _existing(tokenId).balance;
    }

    function slotOf(uint256 tokenId) external view returns (uint256) {
        return _existing(tokenId).slot;
    }

    /// @notice Refused: value allowances would let an operator move value (use `offerFinancing`).
    function approve(uint256, address, uint256) external pure {
        revert OperatorsUnsupported();
    }

    /// @notice The live financing offer of `tokenId`'s holder to `operator` (0 when none, expired,
    /// consumed, or the token changed hands).
    function allowance(uint256 tokenId, address operator) external view returns (uint256) {
        Token storage t = _existing(tokenId);
        Offer storage o = _offers[tokenId][operator];
        if (block.timestamp >= o.expiry) return 0;
        return _liveOffer(tokenId, t, o);
    }

    /// @notice Move `value` between two tokens of the same slot and payable, both unfinanced or both
    /// financed. Caller: the holder of `fromTokenId`; the receiving holder must be a member.
    function transferFrom(uint256 fromTokenId, uint256 toTokenId, uint256 value) external {
        Token storage from = _movable(fromTokenId);
        Token storage to = _movable(toTokenId);
        if (from.slot != to.slot || from.root != to.root || from.financed != to.financed || fromTokenId == toTokenId)
        {
            revert SlotMismatch(fromTokenId, toTokenId);
        }
        _holder(from);
        _member(to.owner);
        _checkValue(fromTokenId, from, value);
        from.balance -= value;
        to.balance += value;
        emit TransferValue(fromTokenId, toTokenId, value);
        _checkValueReceiver(fromTokenId, toTokenId, to.owner, value);
    }

    /// @notice Split `value` (at least MIN_SPLIT_VALUE) off `fromTokenId` into a new token owned by
    /// member `to`; returns its id. Caller: the holder.
    function transferFrom(uint256 fromTokenId, address to, uint256 value) external returns (uint256 tokenId) {
        Token storage from = _movable(fromTokenId);
        _holder(from);
        _member(to);
        _checkValue(fromTokenId, from, value);
        if (value < MIN_SPLIT_VALUE) revert SplitTooSmall(value, MIN_SPLIT_VALUE);
        tokenId = _split(fromTokenId, from, to, value, from.financed);
        _checkValueReceiver(fromTokenId, tokenId, to, value);
    }

    // ------------------------------------------------------------ ERC-721
    function balanceOf(address owner) external view returns (uint256) {
        if (owner == address(0)) revert ZeroAddress();
        return _owned[owner].length;
    }

    function ownerOf(uint256 tokenId) external view returns (address) {
        return _existing(tokenId).owner;
    }

    function safeTransferFrom(address from, address to, uint256 tokenId, bytes calldata data) external {
        _transferToken(from, to, tokenId);
        _checkReceiver(from, to, tokenId, data);
    }

    function safeTransferFrom(address from, address to, uint256 tokenId) external {
        _transferToken(from, to, tokenId);
        _checkReceiver(from, to, tokenId, "");
    }

    function transferFrom(address from, address to, uint256 tokenId) external {
        _transferToken(from, to, tokenId);
    }

    /// @notice Refused: an approved address could move the whole token (only the holder moves value).
    function approve(address, uint256) external pure {
        revert OperatorsUnsupported();
    }

    /// @notice Refused for `approved == true` (operators do not exist here); `false` is a no-op.
    function setApprovalForAll(address operator, bool approved) external {
        if (approved) revert OperatorsUnsupported();
        emit ApprovalForAll(msg.sender, operator, false);
    }

    function getApproved(uint256 tokenId) external view returns (address) {
        _existing(tokenId);
        return address(0);
    }

    function isApprovedForAll(address, address) external pure returns (bool) {
        return false;
    }

    // ------------------------------------------------------------ views
    function getToken(uint256 tokenId) external view returns (Token memory) {
        return _existing(tokenId);
    }

    /// @notice The confirmed payable behind root token `rootTokenId`.
    function getPayable(uint256 rootTokenId) external view returns (Payable memory) {
        if (_payables[rootTokenId].issuer == address(0)) revert UnknownToken(rootTokenId);
        return _payables[rootTokenId];
    }

    /// @notice The holder's offer on `tokenId` to `bank` as stored (check `allowance` for whether it is live).
    function getOffer(uint256 tokenId, address bank) external view returns (Offer memory) {
        _existing(tokenId);
        return _offers[tokenId][bank];
    }

    /// @notice Banks that ever received an offer on `tokenId` (each once).
    function offerBanks(uint256 tokenId) external view returns (address[] memory) {
        return _offerBanks[tokenId];
    }

    /// @notice Value of `tokenId` that a bank could still finance: its balance while it is unfinanced,
    /// not matured, not redeemed, and its holder an active member; else 0.
    function freeToFinance(uint256 tokenId) external view returns (uint256) {
        Token storage t = _existing(tokenId);
        if (t.financed || t.redeemed || block.timestamp >= uint64(t.slot) || !_registry.isActive(t.owner)) return 0;
        return t.balance;
    }

    /// @notice Root token id issued against `invoiceDigest`, 0 when none.
    function tokenOfInvoice(bytes32 invoiceDigest) external view returns (uint256) {
        return _invoiceToken[invoiceDigest];
    }

    /// @notice Every token holding value of the payable `rootTokenId` (root first, creation order).
    function tokensOfPayable(uint256 rootTokenId) external view returns (uint256[] memory) {
        return _family[rootTokenId];
    }

    /// @notice `tokenId`, its parent, …, up to the confirmed payable (at most MAX_DEPTH + 1 ids).
    function chainOf(uint256 tokenId) external view returns (uint256[] memory ids) {
        ids = new uint256[](uint256(_existing(tokenId).depth) + 1);
        uint256 i = 0;
        for (uint256 id = tokenId; id != 0; id = _tokens[id].parent) ids[i++] = id;
    }

    function tokensOf(address owner) external view returns (uint256[] memory) {
        return _owned[owner];
    }

    function getDiscount(uint256 tokenId) external view returns (Discount memory) {
        return _discounts[tokenId];
    }

    function getSettlement(uint256 tokenId) external view returns (Settlement memory) {
        return _settlements[tokenId];
    }

    // ------------------------------------------------------------ internal
    function _existing(uint256 tokenId) private view returns (Token storage t) {
        t = _tokens[tokenId];
        if (t.owner == address(0)) revert UnknownToken(tokenId);
    }

    function _movable(uint256 tokenId) private view returns (Token storage t) {
        t = _existing(tokenId);
        if (t.redeemed) revert Redeemed(tokenId);
        uint64 maturity = uint64(t.slot);
        if (block.timestamp >= maturity) revert Matured(tokenId, maturity);
    }

    function _member(address account) private view {
        if (!_registry.isActive(account)) revert NotMember(account);
    }

    /// The caller must be the token's holder and an active member.
    function _holder(Token storage t) private view {
        if (msg.sender != t.owner) revert NotHolder(msg.sender, t.owner);
        _member(msg.sender);
    }

    function _checkValue(uint256 tokenId, Token storage t, uint256 value) private view {
        if (value == 0) revert ZeroValue();
        if (value > t.balance) revert InsufficientBalance(tokenId, t.balance, value);
    }

    /// Value still offered by `o` on token `t` (0 when consumed, withdrawn or the token changed hands).
    function _liveOffer(uint256 tokenId, Token storage t, Offer storage o) private view returns (uint256) {
        if (o.holder != t.owner || o.epoch != _epoch[tokenId] || t.financed) return 0;
        return o.value < t.balance ? o.value : t.balance;
    }

    function _redeem(uint256 tokenId, Token storage t, Settlement storage st, SettlementStatus how) private {
        uint256 value = t.balance;
        t.balance = 0;
        t.redeemed = true;
        _payables[t.root].settledValue += value;
        st.value = value;
        st.timestamp = uint64(block.timestamp);
        st.status = how;
        emit TransferValue(tokenId, 0, value);
        emit Settled(tokenId, st.holder, value, st.paymentReference);
    }

    function _split(uint256 fromTokenId, Token storage from, address to, uint256 value, bool financed)
        private
        returns (uint256 tokenId)
    {
        if (from.depth >= MAX_DEPTH) revert SplitTooDeep(fromTokenId, from.depth);
        from.balance -= value;
        tokenId = _mint(to, from.slot, value, fromTokenId, from.root, financed, from.depth + 1);
        emit TransferValue(fromTokenId, tokenId, value);
        emit Split(fromTokenId, tokenId, to, value);
    }

    function _mint(address to, uint256 slot, uint256 value, uint256 parent, uint256 root, bool financed, uint16 depth)
        private
        returns (uint256 tokenId)
    {
        tokenId = ++tokenCount;
        if (root == 0) root = tokenId;
        _tokens[tokenId] = Token({
            slot: slot,
            balance: value,
            owner: to,
            parent: parent,
            root: root,
            originalValue: value,
            createdAt: uint64(block.timestamp),
            createdBlock: uint64(block.number),
            financed: financed,
            redeemed: false,
            depth: depth
        });
        _family[root].push(tokenId);
        _addOwned(to, tokenId);
        emit Transfer(address(0), to, tokenId);
        emit SlotChanged(tokenId, 0, slot);
    }

    function _transferToken(address from, address to, uint256 tokenId) private {
        Token storage t = _movable(tokenId);
        address owner = t.owner;
        if (from != owner) revert WrongOwner(tokenId, owner, from);
        _holder(t);
        _member(to);
        _epoch[tokenId] += 1; // every offer of the previous holder lapses
        _removeOwned(owner, tokenId);
        _addOwned(to, tokenId);
        t.owner = to;
        emit Transfer(owner, to, tokenId);
    }

    function _checkReceiver(address from, address to, uint256 tokenId, bytes memory data) private {
        if (to.code.length == 0) return;
        try IERC721Receiver(to).onERC721Received(msg.sender, from, tokenId, data) returns (bytes4 answer) {
            if (answer != IERC721Receiver.onERC721Received.selector) revert NotReceiver(to);
        } catch {
            revert NotReceiver(to);
        }
    }

    /// ERC-3525: value sent to a token owned by a contract needs its `onERC3525Received` acceptance.
    function _checkValueReceiver(uint256 fromTokenId, uint256 toTokenId, address to, uint256 value) private {
        if (to.code.length == 0) return;
        try IERC3525Receiver(to).onERC3525Received(msg.sender, fromTokenId, toTokenId, value, "") returns (
            bytes4 answer
        ) {
            if (answer != IERC3525Receiver.onERC3525Received.selector) revert NotReceiver(to);
        } catch {
            revert NotReceiver(to);
        }
    }

    function _addOwned(address owner, uint256 tokenId) private {
        _owned[owner].push(tokenId);
        _ownedIndex[tokenId] = _owned[owner].length;
    }

    function _removeOwned(address owner, uint256 tokenId) private {
        uint256[] storage list = _owned[owner];
        uint256 idx = _ownedIndex[tokenId] - 1;
        uint256 last = list.length - 1;
        if (idx != last) {
            uint256 moved = list[last];
            list[idx] = moved;
            _ownedIndex[moved] = idx + 1;
        }
        list.pop();
        delete _ownedIndex[tokenId];
    }

    /// Payment references are unique per (kind, payer, payee): a bank's among all its discounts
    /// (payee address(0)), an issuer's per holder it pays.
    function _useReference(string memory kind, address payer, address payee, string calldata paymentReference)
        private
    {
        if (bytes(paymentReference).length == 0) revert EmptyPaymentReference();
        bytes32 key = keccak256(abi.encode(kind, payer, payee, paymentReference));
        if (_paymentReferenceUsed[key]) revert PaymentReferenceUsed(paymentReference);
        _paymentReferenceUsed[key] = true;
    }
}
