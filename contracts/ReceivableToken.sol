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
///   `valueDecimals() == 2`) against an invoice digest that can be used once only.
/// * Slot = `issuer << 96 | currency << 64 | maturity` (address 160 bits, ISO 4217 code as 3 ASCII
///   bytes, maturity in unix seconds 64 bits): value is fungible only within one issuer, currency
///   and maturity.
/// * Holders split value to other members (`transferFrom(tokenId, to, value)` creates a child token),
///   move whole tokens (ERC-721 transfers) or move value between tokens of the same payable.
/// * A bank (BANK role) discounts value a holder approved to it (`approve(tokenId, bank, value)`):
///   `discount` moves the value into a new financed token of the bank and records the rate (basis
///   points per year, 365-day basis), the price paid and the bank's payment reference in the same
///   transaction. Financed value can never be discounted again.
/// * At maturity the issuer settles each holder's token (`settle`), which redeems its whole value.
/// * Refused: transfers to non-members, overspending, any movement after maturity or redemption,
///   a second discount of financed value, a second issue against the same invoice.
contract ReceivableToken is IERC3525 {
    uint32 public constant CORE_ENTERPRISE = 4;
    uint32 public constant BANK = 8;
    uint16 public constant MAX_RATE_BPS = 10000;
    uint256 public constant YEAR_SECONDS = 365 days;

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

    struct Settlement {
        address holder;
        uint256 value;
        string paymentReference;
        uint64 timestamp;
    }

    IMemberRegistry private immutable _registry;
    uint256 public tokenCount;

    mapping(uint256 => Token) private _tokens;
    mapping(uint256 => Payable) private _payables;
    mapping(bytes32 => uint256) private _invoiceToken;
    mapping(uint256 => uint256[]) private _family;
    mapping(uint256 => Discount) private _discounts;
    mapping(uint256 => Settlement) private _settlements;
    mapping(bytes32 => bool) private _paymentReferenceUsed;

    mapping(address => uint256[]) private _owned;
    mapping(uint256 => uint256) private _ownedIndex;
    mapping(uint256 => address) private _approved;
    mapping(address => mapping(address => bool)) private _operators;
    mapping(uint256 => mapping(address => uint256)) private _allowances;
    mapping(uint256 => address[]) private _allowanceOperators;

    event Issued(
        uint256 indexed tokenId, address indexed issuer, address indexed beneficiary, bytes32 invoiceDigest,
        uint256 value, uint256 slot
    );
    event Split(uint256 indexed fromTokenId, uint256 indexed toTokenId, address indexed to, uint256 value);
    event Discounted(
        uint256 indexed tokenId, uint256 indexed fromTokenId, address indexed bank, address holder, uint256 value,
        uint16 rateBps, uint256 price, string paymentReference
    );
    event Settled(uint256 indexed tokenId, address indexed holder, uint256 value, string paymentReference);

    error ZeroAddress();
    error UnknownToken(uint256 tokenId);
    error NotCoreEnterprise(address account);
    error NotBank(address account);
    error NotMember(address account);
    error NotIssuer(address account, address issuer);
    error NotAuthorized(address caller, uint256 tokenId);
    error ZeroValue();
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
    error EmptyPaymentReference();
    error PaymentReferenceUsed(string paymentReference);
    error NothingToSettle(uint256 tokenId);
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
    /// @notice Confirm a payable of `value` (smallest currency unit) to member `to`, maturing at
    /// `maturity` (unix seconds), against `invoiceDigest` (once only). Caller: a core enterprise.
    function issue(address to, bytes3 currency, uint64 maturity, uint256 value, bytes32 invoiceDigest)
        external
        returns (uint256 tokenId)
    {
        if (!_registry.hasRole(msg.sender, CORE_ENTERPRISE)) revert NotCoreEnterprise(msg.sender);
        if (!_registry.isActive(to)) revert NotMember(to);
        if (invoiceDigest == bytes32(0)) revert ZeroInvoiceDigest();
        uint256 existing = _invoiceToken[invoiceDigest];
        if (existing != 0) revert InvoiceAlreadyIssued(invoiceDigest, existing);
        if (value == 0) revert ZeroValue();
        for (uint256 i = 0; i < 3; ++i) {
            if (currency[i] < "A" || currency[i] > "Z") revert InvalidCurrency(currency);
        }
        if (maturity <= block.timestamp) revert MaturityInPast(maturity, block.timestamp);

        uint256 slot = slotFor(msg.sender, currency, maturity);
        tokenId = _mint(to, slot, value, 0, 0, false);
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

    /// @notice Discount `value` of `fromTokenId` (approved to the caller by its holder): the value moves
    /// into a new financed token of the calling bank; the rate (basis points per year), the price
    /// paid (`value - value * rateBps * secondsToMaturity / (10000 * 365 days)`, rounded down
    /// discount) and the bank's payment reference are recorded in the same transaction.
    function discount(uint256 fromTokenId, uint256 value, uint16 rateBps, string calldata paymentReference)
        external
        returns (uint256 tokenId)
    {
        if (!_registry.hasRole(msg.sender, BANK)) revert NotBank(msg.sender);
        Token storage from = _movable(fromTokenId);
        if (from.financed) revert AlreadyDiscounted(fromTokenId);
        if (rateBps > MAX_RATE_BPS) revert InvalidRate(rateBps);
        _useReference(paymentReference);
        address holder = from.owner;
        if (holder == msg.sender) revert NotAuthorized(msg.sender, fromTokenId);
        _spend(fromTokenId, from, value);

        uint256 maturity = uint64(from.slot);
        uint256 price = value - (value * rateBps * (maturity - block.timestamp)) / (uint256(MAX_RATE_BPS) * YEAR_SECONDS);
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

    /// @notice At or after maturity the issuer marks payment of a holder's whole value (redeemed).
    function settle(uint256 tokenId, string calldata paymentReference) external {
        Token storage t = _existing(tokenId);
        address issuer = slotIssuer(t.slot);
        if (msg.sender != issuer) revert NotIssuer(msg.sender, issuer);
        if (t.redeemed) revert Redeemed(tokenId);
        uint64 maturity = uint64(t.slot);
        if (block.timestamp < maturity) revert NotMatured(tokenId, maturity);
        uint256 value = t.balance;
        if (value == 0) revert NothingToSettle(tokenId);
        _useReference(paymentReference);
        t.balance = 0;
        t.redeemed = true;
        _payables[t.root].settledValue += value;
        _settlements[tokenId] = Settlement({
            holder: t.owner,
            value: value,
            paymentReference: paymentReference,
            timestamp: uint64(block.timestamp)
        });
        emit TransferValue(tokenId, 0, value);
        emit Settled(tokenId, t.owner, value, paymentReference);
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

    function approve(uint256 tokenId, address operator, uint256 value) external {
        Token storage t = _existing(tokenId);
        if (msg.sender != t.owner && !_operators[t.owner][msg.sender]) revert NotAuthorized(msg.sender, tokenId);
        if (operator == t.owner) revert SelfApproval(operator);
        if (operator == address(0)) revert ZeroAddress();
        if (_allowances[tokenId][operator] == 0 && value != 0) _allowanceOperators[tokenId].push(operator);
        _allowances[tokenId][operator] = value;
        emit ApprovalValue(tokenId, operator, value);
    }

    function allowance(uint256 tokenId, address operator) external view returns (uint256) {
        _existing(tokenId);
        return _allowances[tokenId][operator];
    }

    /// @notice Move `value` between two tokens of the same slot and payable, both unfinanced or both financed.
    function transferFrom(uint256 fromTokenId, uint256 toTokenId, uint256 value) external {
        Token storage from = _movable(fromTokenId);
        Token storage to = _movable(toTokenId);
        if (from.slot != to.slot || from.root != to.root || from.financed != to.financed || fromTokenId == toTokenId)
        {
            revert SlotMismatch(fromTokenId, toTokenId);
        }
        if (!_registry.isActive(to.owner)) revert NotMember(to.owner);
        _spend(fromTokenId, from, value);
        from.balance -= value;
        to.balance += value;
        emit TransferValue(fromTokenId, toTokenId, value);
    }

    /// @notice Split `value` off `fromTokenId` into a new token owned by member `to`; returns its id.
    function transferFrom(uint256 fromTokenId, address to, uint256 value) external returns (uint256) {
        Token storage from = _movable(fromTokenId);
        if (!_registry.isActive(to)) revert NotMember(to);
        _spend(fromTokenId, from, value);
        return _split(fromTokenId, from, to, value, from.financed);
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

    function approve(address approved, uint256 tokenId) external {
        Token storage t = _existing(tokenId);
        if (msg.sender != t.owner && !_operators[t.owner][msg.sender]) revert NotAuthorized(msg.sender, tokenId);
        _approved[tokenId] = approved;
        emit Approval(t.owner, approved, tokenId);
    }

    function setApprovalForAll(address operator, bool approved) external {
        if (operator == msg.sender) revert SelfApproval(operator);
        _operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function getApproved(uint256 tokenId) external view returns (address) {
        _existing(tokenId);
        return _approved[tokenId];
    }

    function isApprovedForAll(address owner, address operator) external view returns (bool) {
        return _operators[owner][operator];
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

    /// @notice Root token id issued against `invoiceDigest`, 0 when none.
    function tokenOfInvoice(bytes32 invoiceDigest) external view returns (uint256) {
        return _invoiceToken[invoiceDigest];
    }

    /// @notice Every token holding value of the payable `rootTokenId` (root first, creation order).
    function tokensOfPayable(uint256 rootTokenId) external view returns (uint256[] memory) {
        return _family[rootTokenId];
    }

    /// @notice `tokenId`, its parent, …, up to the confirmed payable.
    function chainOf(uint256 tokenId) external view returns (uint256[] memory ids) {
        uint256 n = 0;
        for (uint256 id = tokenId; id != 0; id = _existing(id).parent) ++n;
        ids = new uint256[](n);
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

    /// Authorise msg.sender to move `value` out of `tokenId` (owner, ERC-721 approval/operator, or
    /// ERC-3525 value allowance, which is consumed) and check the balance.
    function _spend(uint256 tokenId, Token storage t, uint256 value) private {
        if (value == 0) revert ZeroValue();
        if (value > t.balance) revert InsufficientBalance(tokenId, t.balance, value);
        if (msg.sender == t.owner || _approved[tokenId] == msg.sender || _operators[t.owner][msg.sender]) return;
        uint256 allowed = _allowances[tokenId][msg.sender];
        if (allowed == 0) revert NotAuthorized(msg.sender, tokenId);
        if (allowed < value) revert InsufficientAllowance(tokenId, msg.sender, allowed, value);
        if (allowed != type(uint256).max) _allowances[tokenId][msg.sender] = allowed - value;
    }

    function _split(uint256 fromTokenId, Token storage from, address to, uint256 value, bool financed)
        private
        returns (uint256 tokenId)
    {
        from.balance -= value;
        tokenId = _mint(to, from.slot, value, fromTokenId, from.root, financed);
        emit TransferValue(fromTokenId, tokenId, value);
        emit Split(fromTokenId, tokenId, to, value);
    }

    function _mint(address to, uint256 slot, uint256 value, uint256 parent, uint256 root, bool financed)
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
            redeemed: false
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
        if (msg.sender != owner && _approved[tokenId] != msg.sender && !_operators[owner][msg.sender]) {
            revert NotAuthorized(msg.sender, tokenId);
        }
        if (!_registry.isActive(to)) revert NotMember(to);
        delete _approved[tokenId];
        address[] storage ops = _allowanceOperators[tokenId];
        for (uint256 i = 0; i < ops.length; ++i) {
            delete _allowances[tokenId][ops[i]];
        }
        delete _allowanceOperators[tokenId];
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

    function _useReference(string calldata paymentReference) private returns (bytes32 key) {
        if (bytes(paymentReference).length == 0) revert EmptyPaymentReference();
        key = keccak256(bytes(paymentReference));
        if (_paymentReferenceUsed[key]) revert PaymentReferenceUsed(paymentReference);
        _paymentReferenceUsed[key] = true;
    }
}
